package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

// fastElection makes elections (and so the leader monitor's three election
// timeouts) short, so the tests wait seconds, not tens of seconds.
var fastElection = []string{"--heartbeat-interval=50", "--election-timeout=500"}

// leaderOf returns the index in ms of the member that leads, asking each
// running member's Status.
func leaderOf(t *testing.T, ctx context.Context, ms []*framework.Member) int {
	t.Helper()
	for i, m := range ms {
		if !m.Running() {
			continue
		}
		st, err := m.Client().Status(ctx, strings.TrimPrefix(m.ClientURL, "http://"))
		check(t, "status", err)
		if st.Leader == st.Header.MemberId {
			return i
		}
	}
	t.Fatalf("no member leads")
	return -1
}

func isNoLeader(err error) bool {
	return err != nil && (errors.Is(rpctypes.Error(err), rpctypes.ErrNoLeader) || strings.Contains(err.Error(), rpctypes.ErrNoLeader.Error()))
}

// TestRequireLeaderWatchAndGet: a watch opened with clientv3.WithRequireLeader
// on a member cut off from the rest of its cluster ends with etcd's "no
// leader" error (instead of stalling silently), so the client can fail over;
// a unary request with WithRequireLeader on that member fails with the same
// error instead of timing out.
func TestRequireLeaderWatchAndGet(t *testing.T) {
	ms := framework.StartCluster(t, 3, framework.Options{ExtraArgs: fastElection})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a := ms[0]
	c := a.Client()

	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	wch := c.Watch(wctx, "rl/", clientv3.WithPrefix())
	// The watch works while there is a leader.
	_, err := c.Put(ctx, "rl/1", "v")
	check(t, "put", err)
	select {
	case resp, ok := <-wch:
		if !ok || resp.Err() != nil || len(resp.Events) != 1 {
			t.Fatalf("first watch response: ok=%v err=%v events=%d", ok, resp.Err(), len(resp.Events))
		}
	case <-ctx.Done():
		t.Fatal("no watch event for the first put")
	}

	ms[1].Kill9()
	ms[2].Kill9()
	lost := time.Now()

	// The watch ends with "no leader": the member notices within an
	// election timeout and cancels the stream after three more.
	var closeErr error
	deadline := time.After(30 * time.Second)
loop:
	for {
		select {
		case resp, ok := <-wch:
			if !ok {
				break loop
			}
			if resp.Err() != nil {
				closeErr = resp.Err()
			}
		case <-deadline:
			t.Fatal("the WithRequireLeader watch on a member without a leader did not end within 30s")
		}
	}
	t.Logf("watch ended %v after the peers were killed: %v", time.Since(lost).Round(time.Millisecond), closeErr)
	if !isNoLeader(closeErr) {
		t.Fatalf("watch ended with %v, want %q", closeErr, rpctypes.ErrNoLeader)
	}

	gctx, gcancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), 20*time.Second)
	defer gcancel()
	_, err = c.Get(gctx, "rl/1")
	if !isNoLeader(err) {
		t.Fatalf("Get WithRequireLeader on a member without a leader: %v, want %q", err, rpctypes.ErrNoLeader)
	}
	// A request without the metadata is not refused by the check: a
	// serializable read is still served locally.
	resp, err := c.Get(ctx, "rl/1", clientv3.WithSerializable())
	check(t, "serializable get without a leader", err)
	if len(resp.Kvs) != 1 {
		t.Fatalf("serializable get: %d keys", len(resp.Kvs))
	}
}
