package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"net/url"

	"go.uber.org/zap"
)

// AccessControl is etcd's --cors and --host-whitelist, applied to the HTTP
// requests of the client port (not to gRPC, not to --listen-metrics-urls),
// in etcd's order: host check, CORS headers, OPTIONS answered at once.
type AccessControl struct {
	cors  map[string]struct{} // allowed origins; empty or "*" = all
	hosts map[string]struct{} // allowed Host names; empty or "*" = all
	lg    *zap.Logger
}

// NewAccessControl checks the flag values as etcd does: --cors is "*" or a
// list of origins written as URLs with host:port (etcd refuses to start
// otherwise), --host-whitelist any list of host names.
func NewAccessControl(cors, hostWhitelist []string, lg *zap.Logger) (*AccessControl, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	a := &AccessControl{cors: map[string]struct{}{}, hosts: map[string]struct{}{}, lg: lg}
	if len(cors) == 1 && cors[0] == "*" {
		a.cors["*"] = struct{}{}
	} else {
		for _, o := range cors {
			u, err := parseOrigin(o)
			if err != nil {
				return nil, fmt.Errorf("--cors: %w", err)
			}
			a.cors[u.String()] = struct{}{}
		}
	}
	for _, h := range hostWhitelist {
		a.hosts[h] = struct{}{}
	}
	return a, nil
}

// parseOrigin applies etcd's URL rules to one --cors entry.
func parseOrigin(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "http", "https":
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, fmt.Errorf(`URL address does not have the form "host:port": %s`, s)
		}
		if u.Path != "" {
			return nil, fmt.Errorf("URL must not contain a path: %s", s)
		}
	case "unix", "unixs":
	default:
		return nil, fmt.Errorf("URL scheme must be http, https, unix, or unixs: %s", s)
	}
	return u, nil
}

func allowed(set map[string]struct{}, v string) bool {
	if len(set) == 0 {
		return true
	}
	if _, ok := set["*"]; ok {
		return true
	}
	_, ok := set[v]
	return ok
}

// OriginAllowed reports whether CORS headers are sent for origin.
func (a *AccessControl) OriginAllowed(origin string) bool { return allowed(a.cors, origin) }

// HostAllowed reports whether a plain-HTTP request for host is served.
func (a *AccessControl) HostAllowed(host string) bool { return allowed(a.hosts, host) }

// Wrap returns next behind the access checks.
func (a *AccessControl) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Only plain HTTP is checked: DNS rebinding cannot get a browser to
		// present this server's certificate, so HTTPS requests pass.
		if r.TLS == nil {
			if host := hostname(r); !a.HostAllowed(host) {
				a.lg.Warn("rejecting HTTP request to prevent DNS rebinding attacks", zap.String("host", host))
				http.Error(w, errCVE20185702(host), http.StatusMisdirectedRequest)
				return
			}
		}
		if a.OriginAllowed("*") {
			addCORSHeader(w, "*")
		} else if origin := r.Header.Get("Origin"); a.OriginAllowed(origin) {
			addCORSHeader(w, origin)
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostname is the Host header without its port.
func hostname(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		return r.Host
	}
	return h
}

func addCORSHeader(w http.ResponseWriter, origin string) {
	w.Header().Add("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE")
	w.Header().Add("Access-Control-Allow-Origin", origin)
	w.Header().Add("Access-Control-Allow-Headers", "accept, content-type, authorization")
}

// errCVE20185702 is etcd's body for a refused Host, byte for byte (clients
// and operators grep for it).
func errCVE20185702(host string) string {
	return fmt.Sprintf(`
etcd received your request, but the Host header was unrecognized.

To fix this, choose one of the following options:
- Enable TLS, then any HTTPS request will be allowed.
- Add the hostname you want to use to the whitelist in settings.
  - e.g. etcd --host-whitelist %q

This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).
`, host)
}
