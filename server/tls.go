package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"

	"go.uber.org/zap"

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
		ValidityYears: common.SelfSignedCertValidity,
		Hosts:         hosts, CipherSuites: common.CipherSuites, MinVersion: common.MinVersion, MaxVersion: common.MaxVersion,
		NextProtos: protos,
		CRLFile:    t.CRLFile, AllowedCNs: t.AllowedCNs, AllowedHostnames: t.AllowedHostnames,
	}
}

// logRejections logs each connection the CRL, allowed CN/hostname or peer
// SAN checks refuse, with etcd's message and fields, so an operator sees who
// was turned away and why.
func logRejections(lg *zap.Logger, msg string) func(tlsutil.Rejection) {
	return func(r tlsutil.Rejection) {
		fields := []zap.Field{zap.String("server-name", r.ServerName)}
		if r.Remote != nil {
			fields = append([]zap.Field{zap.String("remote-addr", r.Remote.String())}, fields...)
		}
		if c := r.Cert; c != nil {
			ips := make([]string, len(c.IPAddresses))
			for i, ip := range c.IPAddresses {
				ips[i] = ip.String()
			}
			fields = append(fields, zap.String("common-name", c.Subject.CommonName), zap.Strings("ip-addresses", ips), zap.Strings("dns-names", c.DNSNames))
		}
		lg.Warn(msg, append(fields, zap.Error(r.Err))...)
	}
}

// warnUnusableCRL reports a CRL file that cannot be used now. Like etcd the
// member still starts (the file may appear later); until then every
// connection presenting a certificate is refused.
func (s *Server) warnUnusableCRL(flag, path string) {
	if path == "" {
		return
	}
	if err := tlsutil.CheckCRLFile(path); err != nil {
		s.lg.Warn("CRL file unusable: connections presenting a certificate are refused until it is fixed",
			zap.String("flag", flag), zap.String("path", path), zap.Error(err))
	}
}

// setupTLS builds the client and peer TLS configs from etcd's flags. gRPC
// clients require ALPN "h2"; peer streams are HTTP/1.1.
func (s *Server) setupTLS() error {
	c := s.cfg
	if st := tlsSettings(c.ClientTLS, c.TLS, append(c.Member.ListenClientURLs, c.Member.AdvertiseClientURLs...), []string{"h2", "http/1.1"}); st.Enabled() {
		st.Reject = logRejections(s.lg, "rejected connection on client endpoint")
		st.ExemptOwnCert = true
		s.warnUnusableCRL("--client-crl-file", st.CRLFile)
		p, err := tlsutil.Build(st)
		if err != nil {
			return fmt.Errorf("server: client TLS: %w", err)
		}
		s.clientTLS = p
	}
	if st := tlsSettings(c.PeerTLS, c.TLS, append(c.Member.ListenPeerURLs, c.Member.AdvertisePeerURLs...), []string{"http/1.1"}); st.Enabled() {
		st.Reject = logRejections(s.lg, "rejected connection on peer endpoint")
		st.VerifyClientSAN = !c.PeerTLS.SkipClientSANVerify
		s.warnUnusableCRL("--peer-crl-file", st.CRLFile)
		p, err := tlsutil.Build(st)
		if err != nil {
			return fmt.Errorf("server: peer TLS: %w", err)
		}
		s.peerTLS = p
	}
	return nil
}

// listen opens a listener for u, with TLS when u is https or unixs. Client
// listeners (client=true) are counted against --max-connections; peer and
// metrics listeners are not, so a flood of clients can never cut the
// cluster's own traffic or the monitoring that would show the flood.
func (s *Server) listen(u url.URL, flag string, p *tlsutil.Pair, client bool) (net.Listener, error) {
	network, addr := "tcp", u.Host
	switch u.Scheme {
	case "http", "unix":
	case "https", "unixs":
		if p == nil {
			return nil, fmt.Errorf("server: %s %s: %s needs a certificate (--cert-file/--key-file or --auto-tls, with the --peer- prefix for peers)", flag, u.String(), u.Scheme)
		}
	default:
		return nil, fmt.Errorf("server: %s %s: scheme must be http, https, unix or unixs", flag, u.String())
	}
	if isUnixScheme(u.Scheme) {
		network, addr = "unix", unixSocketPath(u)
		if err := removeStaleSocket(addr); err != nil {
			return nil, fmt.Errorf("server: listen on %s %s: %w", flag, u.String(), err)
		}
	}
	lc := net.ListenConfig{Control: socketOptions(s.cfg.Member.SocketReusePort, s.cfg.Member.SocketReuseAddress)}
	l, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("server: listen on %s %s: %w", flag, u.String(), err)
	}
	s.listeners = append(s.listeners, l)
	if client {
		l = s.rel.conns.wrap(l, s.lg)
	}
	if isTLSScheme(u.Scheme) {
		l = tls.NewListener(l, p.Server)
	}
	return l, nil
}

func isTLSScheme(scheme string) bool  { return scheme == "https" || scheme == "unixs" }
func isUnixScheme(scheme string) bool { return scheme == "unix" || scheme == "unixs" }

// unixSocketPath is the socket file of a unix:// or unixs:// URL. As in etcd,
// "unix://localhost:2379" names the file "localhost:2379" in the working
// directory, and "unix:///run/etcd.sock" an absolute path.
func unixSocketPath(u url.URL) string {
	if u.Host == "" && u.Opaque != "" {
		return u.Opaque
	}
	return u.Host + u.Path
}

// removeStaleSocket deletes a socket file left by a process that died
// without closing its listener, which would otherwise make every restart
// fail with "address already in use". Anything that is not a socket is
// left alone: the listen then fails with a clear error.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	return os.Remove(path)
}

// selfTLS is the client TLS config for this member's own connections to its
// client port (lock/election services, JSON gateway), or nil when the first
// client URL is plain http.
func (s *Server) selfTLS() *tls.Config {
	urls := s.cfg.Member.ListenClientURLs
	if len(urls) == 0 || !isTLSScheme(selfURL(urls).Scheme) || s.clientTLS == nil {
		return nil
	}
	c := s.clientTLS.Client.Clone()
	// --client-cert-allowed-hostname restricts the clients this member
	// serves; the member's own server is trusted through the CA already.
	c.VerifyPeerCertificate = nil
	return c
}
