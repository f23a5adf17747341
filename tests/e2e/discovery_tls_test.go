package e2e

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/internal/tlsutil/tlstest"
	"github.com/metastore/metastore/tests/framework"
)

// discoveryTLS is a v3 discovery service served over TLS that requires
// client certificates, with the files a member needs to reach it.
type discoveryTLS struct {
	svc                 *framework.Member
	endpoint            string // host:port, as --discovery-endpoints takes it
	caFile, otherCAFile string // the service's CA; a CA that did not sign it
	certFile, keyFile   string // a client certificate the service trusts
	ctx                 context.Context
	setSize             func(token, size string)
}

func startDiscoveryTLS(t *testing.T) *discoveryTLS {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "discovery-ca")
	d := &discoveryTLS{caFile: ca.WriteCA(t, dir, "ca"), otherCAFile: tlstest.NewCA(t, "other-ca").WriteCA(t, dir, "other-ca")}
	srvCert, srvKey := ca.Issue(t, tlstest.Loopback("discovery")).Write(t, dir, "discovery")
	leaf := ca.Issue(t, tlstest.Names{CN: "member"})
	d.certFile, d.keyFile = leaf.Write(t, dir, "member")
	d.svc = framework.Start(t, framework.Options{Name: "disc", ClientScheme: "https",
		ClientTLS: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS12},
		ExtraArgs: []string{"--cert-file", srvCert, "--key-file", srvKey, "--trusted-ca-file", d.caFile, "--client-cert-auth"}})
	d.endpoint = strings.TrimPrefix(d.svc.ClientURL, "https://")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	d.ctx = ctx
	d.setSize = func(token, size string) {
		_, err := d.svc.Client().Put(ctx, "/_etcd/registry/"+token+"/_config/size", size)
		check(t, "put the cluster size of "+token, err)
	}
	return d
}

// TestV3DiscoveryTLS bootstraps members through a discovery service that
// serves TLS and requires client certificates: with --discovery-cacert,
// --discovery-cert and --discovery-key (and --discovery-insecure-transport
// off) two members form a cluster; --discovery-insecure-skip-tls-verify
// works without the CA. Without a trusted CA, a client certificate, or TLS
// at all, the member keeps retrying, as etcd, and says why.
func TestV3DiscoveryTLS(t *testing.T) {
	d := startDiscoveryTLS(t)
	d.setSize("tls-ok", "2")
	d.setSize("tls-skip", "1")
	clientCert := []string{"--discovery-cert", d.certFile, "--discovery-key", d.keyFile}
	secure := append([]string{"--discovery-endpoints", d.endpoint, "--discovery-insecure-transport=false"}, clientCert...)

	ms := framework.StartCluster(t, 2, framework.Options{NoInitialCluster: true,
		ExtraArgs: append([]string{"--discovery-token", "tls-ok", "--discovery-cacert", d.caFile}, secure...)})
	mustPut(t, ms[0].Client(), d.ctx, "formed", "yes")
	if got := mustGet(t, ms[1].Client(), d.ctx, "formed"); len(got.Kvs) != 1 {
		t.Errorf("a write on one member is not visible on the other")
	}

	skip := framework.StartCluster(t, 1, framework.Options{NoInitialCluster: true,
		ExtraArgs: append([]string{"--discovery-token", "tls-skip", "--discovery-insecure-skip-tls-verify"}, secure...)})
	mustPut(t, skip[0].Client(), d.ctx, "formed", "yes")

	// As etcd, a member the discovery service refuses keeps retrying,
	// logging why (clientv3's retry log, with the TLS error where it is
	// deterministic) and "retry connecting to discovery service"; it never
	// serves and nothing is registered under the token.
	for _, tc := range []struct {
		name, reason string
		args         []string
	}{
		{"wrong CA", "certificate signed by unknown authority", append([]string{"--discovery-cacert", d.otherCAFile}, secure...)},
		// Under TLS 1.3 the refusal of the missing certificate shows as an
		// alert or a broken pipe, depending on timing: only the failure
		// is checked.
		{"no client certificate", "retrying of unary invoker failed",
			[]string{"--discovery-endpoints", d.endpoint, "--discovery-insecure-transport=false", "--discovery-cacert", d.caFile}},
		{"insecure transport", "retrying of unary invoker failed", []string{"--discovery-endpoints", d.endpoint}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"--name", "d0", "--data-dir", dir + "/data",
				"--listen-client-urls", "http://127.0.0.1:0", "--advertise-client-urls", "http://127.0.0.1:2379",
				"--listen-peer-urls", "http://127.0.0.1:0", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
				"--discovery-token", "tls-none", "--discovery-dial-timeout", "1s", "--discovery-request-timeout", "2s"}, tc.args...)
			const retry = "retry connecting to discovery service"
			out, exited, code := runUntilOutput(t, args, retry, false)
			if !strings.Contains(out, retry) || !strings.Contains(out, tc.reason) {
				t.Fatalf("the member's output does not say %q with %q:\n%s", retry, tc.reason, out)
			}
			if strings.Contains(out, framework.ReadyLine) {
				t.Fatalf("the member served:\n%s", out)
			}
			if exited {
				t.Errorf("the member gave up (exit status %d) where etcd retries:\n%s", code, out)
			}
		})
	}
	regs := mustGet(t, d.svc.Client(), d.ctx, "/_etcd/registry/tls-none/", clientv3.WithPrefix())
	if len(regs.Kvs) != 0 {
		t.Errorf("members refused by the discovery service registered: %v", regs.Kvs)
	}
}
