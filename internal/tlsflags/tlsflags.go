package tlsflags

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/listen"
	"github.com/metastore/metastore/internal/tlsutil"
)

// Build returns the client and peer TLS configurations c's flags describe;
// nil for a side without TLS. gRPC clients require ALPN "h2"; peer streams
// are HTTP/1.1.
func Build(c *config.Config, lg *zap.Logger) (client, peer *tlsutil.Pair, err error) {
	if st := settings(c.ClientTLS, c.TLS, append(c.Member.ListenClientURLs, c.Member.AdvertiseClientURLs...), []string{"h2", "http/1.1"}); st.Enabled() {
		st.Reject = logRejections(lg, "rejected connection on client endpoint")
		st.ExemptOwnCert = true
		warnUnusableCRL(lg, "--client-crl-file", st.CRLFile)
		if client, err = tlsutil.Build(st); err != nil {
			return nil, nil, fmt.Errorf("client TLS: %w", err)
		}
	}
	if st := settings(c.PeerTLS, c.TLS, append(c.Member.ListenPeerURLs, c.Member.AdvertisePeerURLs...), []string{"http/1.1"}); st.Enabled() {
		st.Reject = logRejections(lg, "rejected connection on peer endpoint")
		st.VerifyClientSAN = !c.PeerTLS.SkipClientSANVerify
		warnUnusableCRL(lg, "--peer-crl-file", st.CRLFile)
		if peer, err = tlsutil.Build(st); err != nil {
			return nil, nil, fmt.Errorf("peer TLS: %w", err)
		}
	}
	return client, peer, nil
}

func settings(t config.TLSConfig, common config.TLSCommonConfig, urls []url.URL, protos []string) tlsutil.Settings {
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
func warnUnusableCRL(lg *zap.Logger, flag, path string) {
	if path == "" {
		return
	}
	if err := tlsutil.CheckCRLFile(path); err != nil {
		lg.Warn("CRL file unusable: connections presenting a certificate are refused until it is fixed",
			zap.String("flag", flag), zap.String("path", path), zap.Error(err))
	}
}

// SelfClient is the client TLS config for this member's own connections to
// its client port, or nil when the URL it dials (listen.SelfURL) is plain.
func SelfClient(client *tlsutil.Pair, listenClientURLs []url.URL) *tls.Config {
	if len(listenClientURLs) == 0 || !listen.IsTLS(listen.SelfURL(listenClientURLs).Scheme) || client == nil {
		return nil
	}
	c := client.Client.Clone()
	// --client-cert-allowed-hostname restricts the clients this member
	// serves; the member's own server is trusted through the CA already.
	c.VerifyPeerCertificate = nil
	return c
}
