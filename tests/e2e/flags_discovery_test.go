package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/metastore/metastore/tests/framework"
)

// TestV3Discovery bootstraps a three-member cluster through etcd's v3
// discovery protocol: a one-member discovery service holds the expected
// size under the token, the three members start with --discovery-endpoints
// and --discovery-token instead of --initial-cluster, register, wait for
// each other and form one cluster, visible in the member list of each and
// in the registry.
func TestV3Discovery(t *testing.T) {
	svc, sc, ctx := setup(t)
	const token = "disc-e2e-token"
	_, err := sc.Put(ctx, "/_etcd/registry/"+token+"/_config/size", "3")
	check(t, "put the cluster size", err)

	ms := framework.StartCluster(t, 3, framework.Options{NoInitialCluster: true, ExtraArgs: []string{
		"--discovery-endpoints", strings.TrimPrefix(svc.ClientURL, "http://"), "--discovery-token", token,
	}})
	var want []string
	for _, m := range ms {
		want = append(want, m.PeerURL)
	}
	slices.Sort(want)
	for _, m := range ms {
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		ml, err := m.Client().MemberList(lctx)
		cancel()
		check(t, "member list on "+m.Name, err)
		var got []string
		for _, mm := range ml.Members {
			got = append(got, mm.PeerURLs...)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s lists peers %v, want %v", m.Name, got, want)
		}
	}
	mustPut(t, ms[0].Client(), ctx, "formed", "yes")
	if got := mustGet(t, ms[2].Client(), ctx, "formed"); len(got.Kvs) != 1 {
		t.Errorf("a write on one member is not visible on another")
	}
	regs := mustGet(t, sc, ctx, "/_etcd/registry/"+token+"/members/", clientv3.WithPrefix())
	if len(regs.Kvs) != 3 {
		t.Errorf("%d members registered, want 3", len(regs.Kvs))
	}
}

// TestV3DiscoveryRefusals checks that a member does not start when the
// discovery service has no size for its token, or a bad one, with etcd's
// errors.
func TestV3DiscoveryRefusals(t *testing.T) {
	svc, sc, ctx := setup(t)
	_, err := sc.Put(ctx, "/_etcd/registry/bad-size/_config/size", "three")
	check(t, "put a bad size", err)
	bin := framework.ServerBinary(t)
	for token, want := range map[string]string{"no-size": "discovery: size key not found", "bad-size": "discovery: size key is bad"} {
		dir := t.TempDir()
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		cmd := exec.CommandContext(cctx, bin, "--name", "d0", "--data-dir", dir+"/data",
			"--listen-client-urls", "http://127.0.0.1:0", "--advertise-client-urls", "http://127.0.0.1:2379",
			"--listen-peer-urls", "http://127.0.0.1:0", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
			"--discovery-endpoints", strings.TrimPrefix(svc.ClientURL, "http://"), "--discovery-token", token)
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("token %s: %v; output does not hold %q:\n%s", token, err, want, out)
		}
	}
}

// dnsResponder answers, on 127.0.0.1 over UDP, the SRV query for
// _etcd-server._tcp.<domain> with one record per port (target
// localhost.) and every other query with "no such name".
func dnsResponder(t *testing.T, domain string, ports []int) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	check(t, "listen udp", err)
	t.Cleanup(func() { _ = pc.Close() })
	want := "_etcd-server._tcp." + domain + "."
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed at cleanup
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeNameError}
			if q.Type == dnsmessage.TypeSRV && strings.EqualFold(q.Name.String(), want) {
				rh.RCode = dnsmessage.RCodeSuccess
			}
			b := dnsmessage.NewBuilder(nil, rh)
			b.EnableCompression()
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if rh.RCode == dnsmessage.RCodeSuccess {
				for _, port := range ports {
					_ = b.SRVResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60},
						dnsmessage.SRVResource{Priority: 0, Weight: 10, Port: uint16(port), Target: dnsmessage.MustNewName("localhost.")})
				}
			}
			out, err := b.Finish()
			if err == nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// TestDNSSRVDiscovery bootstraps a three-member cluster from DNS SRV
// records (--discovery-srv): a DNS responder on loopback names the three
// peer ports under _etcd-server._tcp.example.test, each member finds
// itself among them by its advertised peer address and the others by
// theirs, and the three form one cluster. metastore only: etcd asks the
// system resolver, which a test cannot point at a loopback responder
// (metastore's METASTORE_TESTING_DNS_SERVER does that).
func TestDNSSRVDiscovery(t *testing.T) {
	if !ours() {
		t.Skip("etcd's SRV lookups go to the system resolver")
	}
	ports := make([]int, 3)
	for i := range ports {
		p, err := framework.FreePort()
		check(t, "free port", err)
		ports[i] = p
	}
	dns := dnsResponder(t, "example.test", ports)
	ms := framework.StartCluster(t, 3, framework.Options{
		NoInitialCluster: true,
		Env:              []string{"METASTORE_TESTING_DNS_SERVER=" + dns},
		MemberOptions: func(i int, o *framework.Options) {
			peer := fmt.Sprintf("http://127.0.0.1:%d", ports[i])
			o.ExtraArgs = append(o.ExtraArgs, "--discovery-srv", "example.test",
				"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer)
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range ms {
		ml, err := m.Client().MemberList(ctx)
		check(t, "member list on "+m.Name, err)
		var names []string
		for _, mm := range ml.Members {
			names = append(names, mm.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"m0", "m1", "m2"}) {
			t.Errorf("%s lists members %v, want m0 m1 m2", m.Name, names)
		}
	}
	mustPut(t, ms[1].Client(), ctx, "srv", "formed")
	if got := mustGet(t, ms[0].Client(), ctx, "srv"); len(got.Kvs) != 1 {
		t.Errorf("a write on one member is not visible on another")
	}
}

// TestV3DiscoveryWithAuth bootstraps through a discovery service with auth
// on: members log in with --discovery-user/--discovery-password; without
// them, a member is refused and does not serve.
func TestV3DiscoveryWithAuth(t *testing.T) {
	svc, anon, ctx := setup(t, authArgs...)
	_, err := anon.UserAdd(ctx, "root", "rootpw")
	check(t, "add root", err)
	_, err = anon.UserGrantRole(ctx, "root", "root")
	check(t, "grant root", err)
	_, err = anon.AuthEnable(ctx)
	check(t, "enable auth", err)
	root, err := authClient(t, svc, "root", "rootpw")
	check(t, "root client", err)
	const token = "disc-auth-token"
	_, err = root.Put(ctx, "/_etcd/registry/"+token+"/_config/size", "1")
	check(t, "put the cluster size", err)
	endpoint := strings.TrimPrefix(svc.ClientURL, "http://")

	// Refused, the member retries as etcd does, with the reason in its log.
	dir := t.TempDir()
	out, exited, _ := runUntilOutput(t, []string{"--name", "anon", "--data-dir", dir + "/data",
		"--listen-client-urls", "http://127.0.0.1:0", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:0", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--discovery-endpoints", endpoint, "--discovery-token", token}, "user name is empty", false)
	if !strings.Contains(out, "user name is empty") || strings.Contains(out, framework.ReadyLine) {
		t.Errorf("a member without discovery credentials (exited %v) does not say etcd's \"user name is empty\" or serves:\n%s", exited, out)
	}

	ms := framework.StartCluster(t, 1, framework.Options{NoInitialCluster: true, ExtraArgs: []string{
		"--discovery-endpoints", endpoint, "--discovery-token", token,
		"--discovery-user", "root", "--discovery-password", "rootpw",
	}})
	mustPut(t, ms[0].Client(), ctx, "formed", "yes")
}

// TestV3DiscoveryWaitEndsOnSIGTERM: a member that registered with the
// discovery service and waits for the rest of its cluster stops on SIGTERM
// (the wait used to ignore the signal until SIGKILL).
func TestV3DiscoveryWaitEndsOnSIGTERM(t *testing.T) {
	svc, sc, ctx := setup(t)
	const token = "disc-sigterm"
	_, err := sc.Put(ctx, "/_etcd/registry/"+token+"/_config/size", "3")
	check(t, "put the cluster size", err)
	m := startDiscoveryMember(t, strings.TrimPrefix(svc.ClientURL, "http://"), token, "--discovery-request-timeout", "60s")
	check(t, "d0 registers and waits for two more members", framework.WaitFor(30*time.Second, 50*time.Millisecond, func() (bool, error) {
		r, err := sc.Get(ctx, "/_etcd/registry/"+token+"/members/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && r.Count == 1, nil
	}))
	m.sigtermWithin(t, 10*time.Second, "a member waiting for its discovery cluster")
}
