package e2e

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

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
