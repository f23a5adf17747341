package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

// TestV3DiscoveryServiceDownAtFirst: the discovery service is down when
// the members start. As etcd, they do not give up: each logs "retry
// connecting to discovery service" and backs off; once the service is back
// (same address, the size still under the token) they register, find each
// other and bootstrap one cluster.
func TestV3DiscoveryServiceDownAtFirst(t *testing.T) {
	svc := framework.Start(t, framework.Options{Name: "disc"})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const token = "disc-down-at-first"
	_, err := svc.Client().Put(ctx, "/_etcd/registry/"+token+"/_config/size", "2")
	check(t, "put the cluster size", err)
	svc.Stop()

	ms := framework.StartCluster(t, 2, framework.Options{NoInitialCluster: true, NoWait: true, ExtraArgs: []string{
		"--discovery-endpoints", strings.TrimPrefix(svc.ClientURL, "http://"), "--discovery-token", token,
		"--discovery-dial-timeout", "500ms", "--discovery-request-timeout", "1s",
	}})
	const retryLine = "retry connecting to discovery service"
	for _, m := range ms {
		check(t, m.Name+" logs a retry of the unreachable discovery service", framework.WaitFor(60*time.Second, 100*time.Millisecond,
			func() (bool, error) {
				if !m.Running() {
					return false, fmt.Errorf("gave up on the unreachable discovery service (%v):\n%s", m.ExitError(), m.Logs())
				}
				return strings.Contains(m.Logs(), retryLine), nil
			}))
		if strings.Contains(m.Logs(), framework.ReadyLine) {
			t.Fatalf("%s serves without its cluster:\n%s", m.Name, m.Logs())
		}
	}

	svc.StartAgain()
	// The next retry comes at most one back-off (a few seconds) later.
	for _, m := range ms {
		check(t, m.Name+" serves once the discovery service is back", framework.WaitFor(60*time.Second, 100*time.Millisecond, func() (bool, error) {
			if !m.Running() {
				return false, m.ExitError()
			}
			return strings.Contains(m.Logs(), framework.ReadyLine), nil
		}))
	}
	for _, m := range ms {
		if !strings.Contains(m.Logs(), "discovery joined cluster successfully") {
			t.Errorf("%s did not log etcd's \"discovery joined cluster successfully\"", m.Name)
		}
	}
	mustPut(t, ms[0].Client(), ctx, "formed", "after-retry")
	if got := mustGet(t, ms[1].Client(), ctx, "formed"); len(got.Kvs) != 1 {
		t.Errorf("a write on one member is not visible on the other")
	}
	ml, err := ms[1].Client().MemberList(ctx)
	check(t, "member list", err)
	if len(ml.Members) != 2 {
		t.Errorf("the cluster has %d members, want 2: %v", len(ml.Members), ml.Members)
	}
	regs := mustGet(t, svc.Client(), ctx, "/_etcd/registry/"+token+"/members/", clientv3.WithPrefix())
	if len(regs.Kvs) != 2 {
		t.Errorf("%d members registered, want 2", len(regs.Kvs))
	}
}
