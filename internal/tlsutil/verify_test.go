package tlsutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/metastore/metastore/internal/tlsutil/tlstest"
)

// pki is a CA, a server certificate for 127.0.0.1 and the files Build reads.
type pki struct {
	dir               string
	ca                *tlstest.CA
	caFile            string
	certFile, keyFile string
}

func newPKI(t *testing.T, serverCN string) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), ca: tlstest.NewCA(t, "test-ca")}
	p.caFile = p.ca.WriteCA(t, p.dir, "ca")
	p.certFile, p.keyFile = p.ca.Issue(t, tlstest.Loopback(serverCN)).Write(t, p.dir, "server")
	return p
}

// settings are mutual-TLS settings for the server certificate.
func (p *pki) settings() Settings {
	return Settings{CertFile: p.certFile, KeyFile: p.keyFile, TrustedCAFile: p.caFile, ClientCertAuth: true}
}

// clientWith is a client config that trusts the CA and presents leaf.
func (p *pki) clientWith(leaf *tlstest.Leaf) *tls.Config {
	c := &tls.Config{RootCAs: p.ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if leaf != nil {
		c.Certificates = []tls.Certificate{leaf.TLS}
	}
	return c
}

// serverHandshake runs one handshake over 127.0.0.1 and returns the
// listener side's error, which is where a refused client certificate shows
// (under TLS 1.3 the client finishes before the server has checked it).
func serverHandshake(t *testing.T, srv, cli *tls.Config) error {
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
	c, cerr := tls.Dial("tcp", l.Addr().String(), cli)
	if cerr == nil {
		defer c.Close()
	}
	return <-errc
}

func TestCRLRefusesRevokedCertificatesAndReloads(t *testing.T) {
	p := newPKI(t, "server")
	good := p.ca.Issue(t, tlstest.Names{CN: "good"})
	revoked := p.ca.Issue(t, tlstest.Names{CN: "revoked"})
	crlFile := tlstest.WriteFile(t, p.dir, "crl.der", p.ca.CRL(t, revoked.Cert))

	st := p.settings()
	st.CRLFile = crlFile
	var mu sync.Mutex
	var rejected []Rejection
	st.Reject = func(r Rejection) {
		mu.Lock()
		defer mu.Unlock()
		rejected = append(rejected, r)
	}
	pair, err := Build(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := serverHandshake(t, pair.Server, p.clientWith(good)); err != nil {
		t.Fatalf("certificate not in the CRL refused: %v", err)
	}
	err = serverHandshake(t, pair.Server, p.clientWith(revoked))
	if err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked certificate: err = %v, want a revocation error", err)
	}
	mu.Lock()
	if len(rejected) != 1 || rejected[0].Cert == nil || rejected[0].Cert.Subject.CommonName != "revoked" ||
		!strings.HasPrefix(rejected[0].Remote.String(), "127.0.0.1:") {
		t.Fatalf("rejections reported: %+v, want one for CN revoked from 127.0.0.1", rejected)
	}
	mu.Unlock()

	// A new CRL applies to the next connection, without a restart; PEM
	// works as well as DER.
	tlstest.WriteFile(t, p.dir, "crl.der", p.ca.CRLPEM(t, good.Cert))
	if err := serverHandshake(t, pair.Server, p.clientWith(good)); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("certificate revoked by the rewritten CRL: err = %v", err)
	}
	if err := serverHandshake(t, pair.Server, p.clientWith(revoked)); err != nil {
		t.Fatalf("certificate no longer in the CRL refused: %v", err)
	}

	// Fail closed: an unreadable CRL refuses every client certificate.
	if err := os.Remove(crlFile); err != nil {
		t.Fatal(err)
	}
	if err := serverHandshake(t, pair.Server, p.clientWith(revoked)); err == nil {
		t.Fatal("missing CRL file: client certificate accepted")
	}
	tlstest.WriteFile(t, p.dir, "crl.der", []byte("not a CRL"))
	if err := serverHandshake(t, pair.Server, p.clientWith(revoked)); err == nil {
		t.Fatal("garbage CRL file: client certificate accepted")
	}
	if CheckCRLFile(crlFile) == nil {
		t.Fatal("CheckCRLFile accepted garbage")
	}
}

// etcd checks every certificate the client presents, so revoking an
// intermediate CA cuts off every leaf under it.
func TestCRLChecksTheWholePresentedChain(t *testing.T) {
	p := newPKI(t, "server")
	inter := p.ca.Intermediate(t, "intermediate")
	leaf := inter.Issue(t, tlstest.Names{CN: "client"})
	st := p.settings()
	st.CRLFile = tlstest.WriteFile(t, p.dir, "crl.der", p.ca.CRL(t))
	pair, err := Build(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := serverHandshake(t, pair.Server, p.clientWith(leaf)); err != nil {
		t.Fatalf("leaf under a valid intermediate refused: %v", err)
	}
	tlstest.WriteFile(t, p.dir, "crl.der", p.ca.CRL(t, inter.Cert))
	if err := serverHandshake(t, pair.Server, p.clientWith(leaf)); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("leaf under a revoked intermediate: err = %v", err)
	}
}

func TestAllowedCNs(t *testing.T) {
	p := newPKI(t, "member")
	st := p.settings()
	st.AllowedCNs = []string{"admin", "member"}
	var mu sync.Mutex
	var rejected []Rejection
	st.Reject = func(r Rejection) {
		mu.Lock()
		defer mu.Unlock()
		rejected = append(rejected, r)
	}
	pair, err := Build(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, cn := range []string{"member", "admin"} {
		if err := serverHandshake(t, pair.Server, p.clientWith(p.ca.Issue(t, tlstest.Names{CN: cn}))); err != nil {
			t.Fatalf("allowed CN %q refused: %v", cn, err)
		}
	}
	err = serverHandshake(t, pair.Server, p.clientWith(p.ca.Issue(t, tlstest.Loopback("intruder"))))
	if !errors.Is(err, ErrIdentityRejected) {
		t.Fatalf("CN intruder: err = %v, want %v", err, ErrIdentityRejected)
	}
	mu.Lock()
	if len(rejected) != 1 || rejected[0].Cert.Subject.CommonName != "intruder" || rejected[0].Err != ErrIdentityRejected {
		t.Fatalf("rejections reported: %+v", rejected)
	}
	mu.Unlock()
	// A certificate from another CA never reaches the CN check.
	other := tlstest.NewCA(t, "other-ca").Issue(t, tlstest.Names{CN: "member"})
	if err := serverHandshake(t, pair.Server, p.clientWith(other)); err == nil {
		t.Fatal("certificate of another CA accepted")
	}

	// The dialing side checks the server it reaches, as etcd's peer
	// transport does: a member's client config refuses a server whose
	// certificate has another CN.
	cliLeaf := p.ca.Issue(t, tlstest.Names{CN: "member"})
	cliLeafCert, cliLeafKey := cliLeaf.Write(t, p.dir, "peer-client")
	dialer, err := Build(Settings{CertFile: cliLeafCert, KeyFile: cliLeafKey, TrustedCAFile: p.caFile, AllowedCNs: []string{"member"}})
	if err != nil {
		t.Fatal(err)
	}
	plain := p.settings() // a server with CN "member"
	okSrv, err := Build(plain)
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, okSrv.Server, dialer.Client); err != nil {
		t.Fatalf("dialing a server with an allowed CN: %v", err)
	}
	badCert, badKey := p.ca.Issue(t, tlstest.Loopback("intruder")).Write(t, p.dir, "bad-server")
	plain.CertFile, plain.KeyFile = badCert, badKey
	badSrv, err := Build(plain)
	if err != nil {
		t.Fatal(err)
	}
	if err := dialOnly(t, badSrv.Server, dialer.Client); !errors.Is(err, ErrIdentityRejected) {
		t.Fatalf("dialing a server with CN intruder: err = %v, want %v", err, ErrIdentityRejected)
	}
}

// dialOnly returns the dialing side's handshake error.
func dialOnly(t *testing.T, srv, cli *tls.Config) error {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		_ = c.(*tls.Conn).Handshake()
		c.Close()
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), cli)
	if err == nil {
		c.Close()
	}
	<-done
	return err
}

func TestAllowedHostnames(t *testing.T) {
	p := newPKI(t, "server")
	st := p.settings()
	st.AllowedHostnames = []string{"client.example", "10.0.0.7"}
	pair, err := Build(st)
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]tlstest.Names{
		"DNS SAN":  {CN: "x", DNS: []string{"client.example"}},
		"wildcard": {CN: "x", DNS: []string{"*.example"}},
		"IP SAN":   {CN: "x", IPs: []net.IP{net.ParseIP("10.0.0.7")}},
	} {
		if err := serverHandshake(t, pair.Server, p.clientWith(p.ca.Issue(t, n))); err != nil {
			t.Errorf("%s: allowed hostname refused: %v", name, err)
		}
	}
	for name, n := range map[string]tlstest.Names{
		"other DNS SAN":        {CN: "client.example", DNS: []string{"intruder.example"}},
		"CN only, no SAN":      {CN: "client.example"},
		"other IP SAN":         {CN: "x", IPs: []net.IP{net.ParseIP("10.0.0.8")}},
		"loopback certificate": tlstest.Loopback("client.example"),
	} {
		if err := serverHandshake(t, pair.Server, p.clientWith(p.ca.Issue(t, n))); !errors.Is(err, ErrIdentityRejected) {
			t.Errorf("%s: err = %v, want %v", name, err, ErrIdentityRejected)
		}
	}
	// The member's own certificate (its self connections) passes only with
	// ExemptOwnCert. (The dialing side's own check is not under test here.)
	self := func(p *Pair) *tls.Config {
		c := p.Client.Clone()
		c.VerifyPeerCertificate = nil
		return c
	}
	if err := serverHandshake(t, pair.Server, self(pair)); !errors.Is(err, ErrIdentityRejected) {
		t.Fatalf("own certificate without ExemptOwnCert: err = %v", err)
	}
	exempt := st
	exempt.ExemptOwnCert = true
	ex, err := Build(exempt)
	if err != nil {
		t.Fatal(err)
	}
	if err := serverHandshake(t, ex.Server, self(ex)); err != nil {
		t.Fatalf("own certificate with ExemptOwnCert: %v", err)
	}
	if err := serverHandshake(t, ex.Server, p.clientWith(p.ca.Issue(t, tlstest.Loopback("server")))); !errors.Is(err, ErrIdentityRejected) {
		t.Fatalf("another certificate with the same names passed as own: %v", err)
	}
	// Without client-cert-auth and a CA the listener asks for no
	// certificate, so (as in etcd) there is nothing to check.
	st.ClientCertAuth, st.TrustedCAFile = false, ""
	open, err := Build(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := serverHandshake(t, open.Server, p.clientWith(nil)); err != nil {
		t.Fatalf("server without client-cert-auth: %v", err)
	}
}

func TestAllowedCNsAndHostnamesAreExclusive(t *testing.T) {
	p := newPKI(t, "server")
	st := p.settings()
	st.AllowedCNs, st.AllowedHostnames = []string{"a"}, []string{"b"}
	if _, err := Build(st); err == nil || !strings.Contains(err.Error(), "mutually exclusive") {
		t.Fatalf("err = %v, want mutually exclusive", err)
	}
}

func TestNoChecksConfiguredLeavesConfigAlone(t *testing.T) {
	p := newPKI(t, "server")
	pair, err := Build(p.settings())
	if err != nil {
		t.Fatal(err)
	}
	if pair.Server.VerifyPeerCertificate != nil || pair.Server.VerifyConnection != nil || pair.Server.GetConfigForClient != nil ||
		pair.Client.VerifyPeerCertificate != nil {
		t.Fatal("verification hooks installed without CRL or allowed names")
	}
	if _, err := os.Stat(filepath.Join(p.dir, "ca.crt")); err != nil {
		t.Fatal(err)
	}
}

// As in etcd, a trusted CA alone (no --client-cert-auth) already makes the
// listener require a verified client certificate.
func TestTrustedCAAloneRequiresClientCertificates(t *testing.T) {
	p := newPKI(t, "server")
	st := p.settings()
	st.ClientCertAuth = false
	pair, err := Build(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := serverHandshake(t, pair.Server, p.clientWith(nil)); err == nil {
		t.Fatal("client without a certificate accepted under --trusted-ca-file")
	}
	if err := serverHandshake(t, pair.Server, p.clientWith(tlstest.NewCA(t, "other").Issue(t, tlstest.Names{CN: "c"}))); err == nil {
		t.Fatal("client certificate of another CA accepted under --trusted-ca-file")
	}
	if err := serverHandshake(t, pair.Server, p.clientWith(p.ca.Issue(t, tlstest.Names{CN: "c"}))); err != nil {
		t.Fatalf("client certificate of the trusted CA refused: %v", err)
	}
}

// fakeResolver answers from maps, so the SAN check's DNS paths are tested
// without a resolver.
type fakeResolver struct {
	reverse map[string][]string
	forward map[string][]string
}

func (f fakeResolver) LookupAddr(_ context.Context, addr string) ([]string, error) {
	if n, ok := f.reverse[addr]; ok {
		return n, nil
	}
	return nil, fmt.Errorf("no PTR for %s", addr)
}

func (f fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if a, ok := f.forward[host]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("no such host %s", host)
}

func TestCheckClientSAN(t *testing.T) {
	r := fakeResolver{
		reverse: map[string][]string{"10.0.0.5": {"m5.peers.example."}},
		forward: map[string][]string{"m1.peers.example": {"10.0.0.1"}, "other.example": {"10.0.0.9"}},
	}
	ca := tlstest.NewCA(t, "ca")
	for _, tc := range []struct {
		name   string
		names  tlstest.Names
		remote string
		ok     bool
	}{
		{"no SANs", tlstest.Names{CN: "m"}, "10.0.0.1:4000", true},
		{"IP SAN matches", tlstest.Names{IPs: []net.IP{net.ParseIP("10.0.0.1")}}, "10.0.0.1:4000", true},
		{"IP SAN differs", tlstest.Names{IPs: []net.IP{net.ParseIP("10.0.0.2")}}, "10.0.0.1:4000", false},
		{"DNS SAN resolves to the address", tlstest.Names{DNS: []string{"m1.peers.example"}}, "10.0.0.1:4000", true},
		{"IP SAN differs, DNS SAN resolves", tlstest.Names{DNS: []string{"m1.peers.example"}, IPs: []net.IP{net.ParseIP("10.0.0.2")}}, "10.0.0.1:4000", true},
		{"wildcard matches the reverse name", tlstest.Names{DNS: []string{"*.peers.example"}}, "10.0.0.5:4000", true},
		{"exact name matches the reverse name", tlstest.Names{DNS: []string{"m5.peers.example"}}, "10.0.0.5:4000", true},
		{"DNS SAN resolves elsewhere", tlstest.Names{DNS: []string{"other.example"}}, "10.0.0.1:4000", false},
		{"unknown DNS SAN", tlstest.Names{DNS: []string{"nowhere.example"}}, "10.0.0.1:4000", false},
	} {
		err := checkClientSAN(context.Background(), r, ca.Issue(t, tc.names).Cert, tc.remote)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	err := checkClientSAN(context.Background(), r, ca.Issue(t, tlstest.Names{DNS: []string{"nowhere.example"}}).Cert, "10.0.0.1:4000")
	if err == nil || !strings.Contains(err.Error(), `"10.0.0.1" does not match any of DNSNames ["nowhere.example"]`) || !strings.Contains(err.Error(), "no such host") {
		t.Fatalf("error %v lacks etcd's wording or the lookup error", err)
	}
}

// Over real handshakes from 127.0.0.1 (IP SANs only, so no DNS involved).
func TestVerifyClientSAN(t *testing.T) {
	p := newPKI(t, "server")
	st := p.settings()
	st.VerifyClientSAN = true
	pair, err := Build(st)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := p.ca.Issue(t, tlstest.Names{CN: "peer", IPs: []net.IP{net.ParseIP("10.0.0.9")}})
	if err := serverHandshake(t, pair.Server, p.clientWith(elsewhere)); err == nil || !strings.Contains(err.Error(), "10.0.0.9") {
		t.Fatalf("certificate for 10.0.0.9 used from 127.0.0.1: err = %v", err)
	}
	for name, n := range map[string]tlstest.Names{"loopback SAN": tlstest.Loopback("peer"), "no SAN": {CN: "peer"}} {
		if err := serverHandshake(t, pair.Server, p.clientWith(p.ca.Issue(t, n))); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	st.VerifyClientSAN = false // --peer-skip-client-san-verification
	skip, err := Build(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := serverHandshake(t, skip.Server, p.clientWith(elsewhere)); err != nil {
		t.Fatalf("SAN checked although skipped: %v", err)
	}
}

// BenchmarkCRLCheck is the per-connection cost of --client-crl-file with a
// 10,000-entry CRL: one file read and compare, parsing only on change.
func BenchmarkCRLCheck(b *testing.B) {
	ca := tlstest.NewCA(b, "ca")
	leaf := ca.Issue(b, tlstest.Names{CN: "c"})
	revoked := make([]*x509.Certificate, 10000)
	for i := range revoked {
		revoked[i] = &x509.Certificate{SerialNumber: big.NewInt(int64(i) + 1)}
	}
	path := tlstest.WriteFile(b, b.TempDir(), "crl.der", ca.CRL(b, revoked...))
	c := newCRLChecker(path)
	chain := []*x509.Certificate{leaf.Cert}
	b.ResetTimer()
	for range b.N {
		if err := c.check(chain); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCRLParse is what etcd pays per connection (it parses every time).
func BenchmarkCRLParse(b *testing.B) {
	ca := tlstest.NewCA(b, "ca")
	revoked := make([]*x509.Certificate, 10000)
	for i := range revoked {
		revoked[i] = &x509.Certificate{SerialNumber: big.NewInt(int64(i) + 1)}
	}
	der := ca.CRL(b, revoked...)
	b.ResetTimer()
	for range b.N {
		if _, err := parseCRL(der); err != nil {
			b.Fatal(err)
		}
	}
}
