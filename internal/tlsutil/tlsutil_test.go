package tlsutil

import (
	"crypto/tls"
	"strings"
	"testing"
)

// handshake runs one TLS handshake over a loopback connection.
func handshake(t *testing.T, srv, cli *tls.Config) error {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		errc <- c.(*tls.Conn).Handshake()
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), cli)
	if err == nil {
		c.Close()
	}
	if serr := <-errc; err == nil {
		err = serr
	}
	return err
}

func TestAutoTLSHandshakeAndClientCertAuth(t *testing.T) {
	p, err := Build(Settings{AutoTLS: true, ClientCertAuth: true, Hosts: []string{"127.0.0.1"}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, p.Server, p.Client); err != nil {
		t.Fatalf("auto TLS handshake with the member's own client config: %v", err)
	}
	// Without a client certificate, --client-cert-auth must refuse.
	noCert := p.Client.Clone()
	noCert.Certificates = nil
	if err := handshake(t, p.Server, noCert); err == nil {
		t.Fatal("client without certificate accepted under client-cert-auth")
	}
}

func TestBadSettings(t *testing.T) {
	for _, tc := range []struct {
		s    Settings
		want string
	}{
		{Settings{}, "no certificate"},
		{Settings{CertFile: "/no/such.crt"}, "both a certificate and a key"},
		{Settings{CertFile: "/no/such.crt", KeyFile: "/no/such.key"}, "load"},
		{Settings{AutoTLS: true, MinVersion: "TLS1.1"}, "unknown TLS version"},
		{Settings{AutoTLS: true, CipherSuites: []string{"TLS_NOT_A_SUITE"}}, "cipher suite"},
		{Settings{AutoTLS: true, TrustedCAFile: "/no/ca.crt"}, "trusted CA"},
	} {
		if _, err := Build(tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.s, err, tc.want)
		}
	}
	p, err := Build(Settings{AutoTLS: true, MinVersion: "TLS1.3", CipherSuites: []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Server.MinVersion != tls.VersionTLS13 || len(p.Server.CipherSuites) != 1 {
		t.Fatalf("settings not applied: min %x suites %v", p.Server.MinVersion, p.Server.CipherSuites)
	}
}
