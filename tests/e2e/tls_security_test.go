package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/tlsutil/tlstest"
	"github.com/metastore/metastore/tests/framework"
)

// clientCreds is one client identity: files for etcdctl, a config for
// clientv3 and net/http.
type clientCreds struct {
	certFile, keyFile string
	tls               *tls.Config
}

func newClientCreds(t *testing.T, ca *tlstest.CA, dir, name string, n tlstest.Names) (clientCreds, *tlstest.Leaf) {
	t.Helper()
	leaf := ca.Issue(t, n)
	c := clientCreds{tls: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS12}}
	c.certFile, c.keyFile = leaf.Write(t, dir, name)
	return c, leaf
}

// Bounds for one put: generous when it must succeed; short when it must
// fail (a refused handshake only shows as a timeout to clientv3, while a
// put that is let through takes milliseconds).
const (
	mustPass = 10 * time.Second
	mustFail = 1500 * time.Millisecond
)

// put tries one Put with a fresh clientv3 client (so a fresh TLS handshake)
// and returns its error.
func put(t *testing.T, m *framework.Member, cfg *tls.Config, key string, timeout time.Duration) error {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints: []string{m.ClientURL}, TLS: cfg, DialTimeout: timeout, Logger: zap.NewNop(),
	})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err = c.Put(ctx, key, "v")
	return err
}

// etcdctlPut runs the real etcdctl with a client certificate.
func etcdctlPut(m *framework.Member, caFile string, c clientCreds, key string, timeout time.Duration) framework.EtcdctlResult {
	return m.EtcdctlTimeout(30*time.Second, "", "--cacert", caFile, "--cert", c.certFile, "--key", c.keyFile,
		"--dial-timeout", timeout.String(), "--command-timeout", timeout.String(), "put", key, "v")
}

// TestClientCRLAndAllowedHostname: --client-crl-file refuses a revoked
// certificate (and a revocation written later, without a restart), and
// --client-cert-allowed-hostname refuses a certificate for another host;
// good certificates work through clientv3 and etcdctl.
func TestClientCRLAndAllowedHostname(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "e2e-ca")
	caFile := ca.WriteCA(t, dir, "ca")
	srvCert, srvKey := ca.Issue(t, tlstest.Loopback("server")).Write(t, dir, "server")
	okHost := tlstest.Names{CN: "client", DNS: []string{"client.example"}}
	good, goodLeaf := newClientCreds(t, ca, dir, "good", okHost)
	revoked, revokedLeaf := newClientCreds(t, ca, dir, "revoked", okHost)
	otherHost, _ := newClientCreds(t, ca, dir, "other-host", tlstest.Names{CN: "client", DNS: []string{"other.example"}})
	crlFile := tlstest.WriteFile(t, dir, "crl.der", ca.CRL(t, revokedLeaf.Cert))

	m := framework.Start(t, framework.Options{
		ClientScheme: "https",
		ClientTLS:    good.tls,
		ExtraArgs: []string{
			"--cert-file", srvCert, "--key-file", srvKey, "--trusted-ca-file", caFile, "--client-cert-auth",
			"--client-crl-file", crlFile, "--client-cert-allowed-hostname", "client.example",
			"--host-whitelist", "localhost", // never applied to HTTPS
		},
	})

	if err := put(t, m, good.tls, "good", mustPass); err != nil {
		t.Fatalf("clientv3 with a good certificate: %v", err)
	}
	if r := etcdctlPut(m, caFile, good, "good-etcdctl", mustPass); r.Err != nil {
		t.Fatalf("etcdctl with a good certificate: %v", r.Err)
	}
	if err := put(t, m, revoked.tls, "revoked", mustFail); err == nil {
		t.Fatal("clientv3 with a revoked certificate: Put succeeded")
	}
	if r := etcdctlPut(m, caFile, revoked, "revoked", mustFail); r.Err == nil {
		t.Fatal("etcdctl with a revoked certificate: put succeeded")
	}
	if err := put(t, m, otherHost.tls, "other-host", mustFail); err == nil {
		t.Fatal("clientv3 with a certificate for a host not allowed: Put succeeded")
	}
	if r := etcdctlPut(m, caFile, otherHost, "other-host", mustFail); r.Err == nil {
		t.Fatal("etcdctl with a certificate for a host not allowed: put succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := m.Client().Get(ctx, "", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	check(t, "get", err)
	if got := keys(resp.Kvs); !equalStrings(got, []string{"good", "good-etcdctl"}) {
		t.Fatalf("keys %q: a refused client wrote", got)
	}

	// Revoking the good certificate applies to the next connection.
	tlstest.WriteFile(t, dir, "crl.der", ca.CRL(t, revokedLeaf.Cert, goodLeaf.Cert))
	if r := etcdctlPut(m, caFile, good, "after-revocation", mustFail); r.Err == nil {
		t.Fatal("etcdctl with a certificate revoked while the server runs: put succeeded")
	}

	logs := m.Logs()
	for _, want := range []string{"rejected connection on client endpoint", "revoked", "client certificate authentication failed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("server log lacks %q", want)
		}
	}

	// HTTPS requests skip --host-whitelist, and the default --cors ("*")
	// answers every request with the CORS headers.
	fresh, _ := newClientCreds(t, ca, dir, "fresh", okHost) // good is revoked by now
	code, hdr, body := httpGet(t, m, fresh.tls, http.MethodGet, "evil.example", "", "/health")
	if code != http.StatusOK || !strings.Contains(body, `"health":"true"`) {
		t.Fatalf("HTTPS GET /health with Host evil.example: %d %q", code, body)
	}
	if got := hdr.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Fatalf("Access-Control-Allow-Origin %q, want *", got)
	}
	// The lock service works although the member's own certificate is not
	// for client.example (etcd serves it in-process; metastore's self
	// connection is exempt from the check).
	r := m.EtcdctlTimeout(30*time.Second, "", "--cacert", caFile, "--cert", fresh.certFile, "--key", fresh.keyFile,
		"lock", "mylock", "echo", "locked")
	if r.Err != nil || r.Stdout != "locked\n" {
		t.Fatalf("etcdctl lock: %q %v", r.Stdout, r.Err)
	}
}

// httpGet sends one request to the member's client URL with the given Host
// and Origin headers, over TLS when cfg is set.
func httpGet(t *testing.T, m *framework.Member, cfg *tls.Config, method, host, origin, path string) (int, http.Header, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	req, err := http.NewRequest(method, m.ClientURL+path, nil)
	check(t, "new request", err)
	if host != "" {
		req.Host = host
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	check(t, method+" "+path, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	check(t, "read body", err)
	return resp.StatusCode, resp.Header, string(b)
}

// TestHostWhitelistAndCORS: on plain HTTP, --host-whitelist refuses other
// Host headers with etcd's 421 and text, --cors sends the CORS headers to
// listed origins only, and gRPC is not affected.
func TestHostWhitelistAndCORS(t *testing.T) {
	m, cli, ctx := setup(t, "--host-whitelist", "localhost,127.0.0.1", "--cors", "http://app.example:8080")
	_, err := cli.Put(ctx, "k", "v")
	check(t, "gRPC put (no Host check on gRPC)", err)

	port := strings.TrimPrefix(m.ClientURL, "http://127.0.0.1:")
	for _, host := range []string{"localhost:" + port, "127.0.0.1:" + port, "localhost"} {
		if code, _, body := httpGet(t, m, nil, http.MethodGet, host, "", "/health"); code != http.StatusOK {
			t.Fatalf("Host %s: %d %q", host, code, body)
		}
	}
	code, _, body := httpGet(t, m, nil, http.MethodGet, "evil.example:"+port, "", "/health")
	if code != http.StatusMisdirectedRequest {
		t.Fatalf("Host evil.example: status %d, want 421", code)
	}
	for _, want := range []string{"etcd received your request, but the Host header was unrecognized.",
		`etcd --host-whitelist "evil.example"`, "CVE-2018-5702"} {
		if !strings.Contains(body, want) {
			t.Fatalf("421 body %q lacks %q", body, want)
		}
	}
	if !strings.Contains(m.Logs(), "rejecting HTTP request to prevent DNS rebinding attacks") {
		t.Error("refused Host not logged")
	}

	code, hdr, _ := httpGet(t, m, nil, http.MethodGet, "", "http://app.example:8080", "/health")
	if code != http.StatusOK || hdr.Get("Access-Control-Allow-Origin") != "http://app.example:8080" ||
		hdr.Get("Access-Control-Allow-Methods") != "POST, GET, OPTIONS, PUT, DELETE" {
		t.Fatalf("allowed origin: %d %v", code, hdr)
	}
	code, hdr, _ = httpGet(t, m, nil, http.MethodGet, "", "http://evil.example:8080", "/health")
	if code != http.StatusOK || hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("other origin: %d %v", code, hdr)
	}
	code, hdr, body = httpGet(t, m, nil, http.MethodOptions, "", "http://app.example:8080", "/v3/kv/range")
	if code != http.StatusOK || body != "" || hdr.Get("Access-Control-Allow-Origin") != "http://app.example:8080" {
		t.Fatalf("preflight: %d %q %v", code, body, hdr)
	}
}

// startPeerTLSCluster starts three members with mutual peer TLS where
// member 2 uses the certificate names bad and is expected never to join;
// extra flags go to every member.
func startPeerTLSCluster(t *testing.T, bad tlstest.Names, extra ...string) []*framework.Member {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "peer-ca")
	caFile := ca.WriteCA(t, dir, "ca")
	return framework.StartCluster(t, 3, framework.Options{
		PeerScheme: "https",
		MemberOptions: func(i int, o *framework.Options) {
			names := tlstest.Loopback("member")
			if i == 2 {
				names, o.NoWait = bad, true
			}
			cert, key := ca.Issue(t, names).Write(t, dir, fmt.Sprintf("peer%d", i))
			o.ExtraArgs = append(o.ExtraArgs, "--peer-cert-file", cert, "--peer-key-file", key,
				"--peer-trusted-ca-file", caFile, "--peer-client-cert-auth")
			o.ExtraArgs = append(o.ExtraArgs, extra...)
		},
	})
}

// requireRefusedMember checks that members 0 and 1 serve together, log
// refusing member 2's peer connections with reason, and that member 2 is
// not a healthy member.
func requireRefusedMember(t *testing.T, ms []*framework.Member, reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := ms[0].Client().Put(ctx, "k", "v")
	check(t, "put through m0", err)
	resp, err := ms[1].Client().Get(ctx, "k")
	check(t, "linearizable get through m1", err)
	if len(resp.Kvs) != 1 {
		t.Fatalf("m1 does not see the write: %v", resp.Kvs)
	}
	err = framework.WaitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) {
		for _, m := range ms[:2] {
			l := m.Logs()
			if strings.Contains(l, "rejected connection on peer endpoint") && strings.Contains(l, reason) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no member logged refusing member 2's peer connection with %q: %v", reason, err)
	}
	// With every peer connection refused it cannot have learnt of a
	// leader, so it cannot pass a (linearizable) health check.
	if code, body, err := ms[2].HTTPGet("/health"); err == nil && code == http.StatusOK && strings.Contains(body, `"health":"true"`) {
		t.Fatalf("refused member is healthy: %d %q", code, body)
	}
}

// TestPeerAllowedCN: with --peer-cert-allowed-cn, members whose peer
// certificates carry the allowed CN form the cluster over mutual TLS, and a
// member whose certificate has another CN is refused: it never joins, and
// the others log why.
func TestPeerAllowedCN(t *testing.T) {
	ms := startPeerTLSCluster(t, tlstest.Loopback("intruder"), "--peer-cert-allowed-cn", "member")
	requireRefusedMember(t, ms, "client certificate authentication failed")
}

// TestPeerClientSANChecked: by default (no
// --peer-skip-client-san-verification) a peer's client certificate must
// name the address it connects from; one issued for 10.0.0.9 used from
// 127.0.0.1 is refused even though the CA signed it.
func TestPeerClientSANChecked(t *testing.T) {
	ms := startPeerTLSCluster(t, tlstest.Names{CN: "member", IPs: []net.IP{net.IPv4(10, 0, 0, 9)}})
	requireRefusedMember(t, ms, "certificate is valid for 10.0.0.9, not 127.0.0.1")
}

// TestTrustedCAAloneRequiresClientCert: as in etcd, --trusted-ca-file
// without --client-cert-auth already refuses clients without a certificate
// of that CA.
func TestTrustedCAAloneRequiresClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "e2e-ca")
	caFile := ca.WriteCA(t, dir, "ca")
	srvCert, srvKey := ca.Issue(t, tlstest.Loopback("server")).Write(t, dir, "server")
	withCert, _ := newClientCreds(t, ca, dir, "client", tlstest.Names{CN: "client"})
	m := framework.Start(t, framework.Options{
		ClientScheme: "https",
		ExtraArgs:    []string{"--cert-file", srvCert, "--key-file", srvKey, "--trusted-ca-file", caFile},
	})
	if err := put(t, m, withCert.tls, "with-cert", mustPass); err != nil {
		t.Fatalf("client with a certificate of the CA: %v", err)
	}
	if err := put(t, m, &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}, "no-cert", mustFail); err == nil {
		t.Fatal("client without a certificate: Put succeeded")
	}
}
