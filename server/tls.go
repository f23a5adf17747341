package server

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/tlsutil"
)

func tlsSettings(t config.TLSConfig, common config.TLSCommonConfig, urls []url.URL, protos []string) tlsutil.Settings {
	var hosts []string
	for _, u := range urls {
		if h, _, err := net.SplitHostPort(u.Host); err == nil {
			hosts = append(hosts, h)
		}
	}
	return tlsutil.Settings{
		CertFile: t.CertFile, KeyFile: t.KeyFile,
		ClientCertFile: t.ClientCertFile, ClientKeyFile: t.ClientKeyFile,
		TrustedCAFile: t.TrustedCAFile, ClientCertAuth: t.ClientCertAuth, AutoTLS: t.AutoTLS,
		Hosts: hosts, CipherSuites: common.CipherSuites, MinVersion: common.MinVersion, MaxVersion: common.MaxVersion,
		NextProtos: protos,
	}
}

// setupTLS builds the client and peer TLS configs from etcd's flags. gRPC
// clients require ALPN "h2"; peer streams are HTTP/1.1.
func (s *Server) setupTLS() error {
	c := s.cfg
	if st := tlsSettings(c.ClientTLS, c.TLS, append(c.Member.ListenClientURLs, c.Member.AdvertiseClientURLs...), []string{"h2", "http/1.1"}); st.Enabled() {
		p, err := tlsutil.Build(st)
		if err != nil {
			return fmt.Errorf("server: client TLS: %w", err)
		}
		s.clientTLS = p
	}
	if st := tlsSettings(c.PeerTLS, c.TLS, append(c.Member.ListenPeerURLs, c.Member.AdvertisePeerURLs...), []string{"http/1.1"}); st.Enabled() {
		p, err := tlsutil.Build(st)
		if err != nil {
			return fmt.Errorf("server: peer TLS: %w", err)
		}
		s.peerTLS = p
	}
	return nil
}

// listen opens a listener for u, with TLS when u is https. Client
// listeners (client=true) are counted against --max-connections; peer and
// metrics listeners are not, so a flood of clients can never cut the
// cluster's own traffic or the monitoring that would show the flood.
func (s *Server) listen(u url.URL, flag string, p *tlsutil.Pair, client bool) (net.Listener, error) {
	switch u.Scheme {
	case "http":
	case "https":
		if p == nil {
			return nil, fmt.Errorf("server: %s %s: https needs a certificate (--cert-file/--key-file or --auto-tls, with the --peer- prefix for peers)", flag, u.String())
		}
	default:
		return nil, fmt.Errorf("server: %s %s: scheme must be http or https", flag, u.String())
	}
	l, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("server: listen on %s %s: %w", flag, u.String(), err)
	}
	s.listeners = append(s.listeners, l)
	if client {
		l = s.rel.conns.wrap(l, s.lg)
	}
	if u.Scheme == "https" {
		l = tls.NewListener(l, p.Server)
	}
	return l, nil
}

// selfTLS is the client TLS config for this member's own connections to its
// client port (lock/election services, JSON gateway), or nil when the first
// client URL is plain http.
func (s *Server) selfTLS() *tls.Config {
	urls := s.cfg.Member.ListenClientURLs
	if len(urls) == 0 || urls[0].Scheme != "https" || s.clientTLS == nil {
		return nil
	}
	return s.clientTLS.Client
}
