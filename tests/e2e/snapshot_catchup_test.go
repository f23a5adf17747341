package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

// TestSnapshotCatchUp stops a follower, writes far more than the leader
// keeps in its compacted Raft log, and restarts the follower: it can only
// catch up through a snapshot streamed from the leader, and afterwards it
// holds every write (serializable reads answer from its own state), its
// leases and MVCC history agree (HashKV), and it follows new writes.
func TestSnapshotCatchUp(t *testing.T) {
	ms := framework.StartCluster(t, 3, framework.Options{ExtraArgs: []string{
		"--snapshot-count", "100", "--snapshot-catchup-entries", "20",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	clients := make([]*clientv3.Client, len(ms))
	for i, m := range ms {
		clients[i] = m.Client()
	}
	leader, follower := -1, -1
	for i, m := range ms {
		st, err := clients[i].Status(ctx, m.ClientURL[len("http://"):])
		check(t, "status", err)
		if st.Leader == st.Header.MemberId {
			leader = i
		} else if follower < 0 {
			follower = i
		}
	}
	if leader < 0 || follower < 0 {
		t.Fatalf("no leader/follower (leader %d, follower %d)", leader, follower)
	}
	lc := clients[leader]
	mustPut(t, lc, ctx, "before", "stop")
	ms[follower].Stop()

	// Far more than snapshot-count + catch-up entries: the follower's next
	// entry is compacted away on the leader.
	lease, err := lc.Grant(ctx, 3600)
	check(t, "grant", err)
	mustPut(t, lc, ctx, "leased", "v", clientv3.WithLease(lease.ID))
	const n = 400
	for i := 0; i < n; i++ {
		mustPut(t, lc, ctx, fmt.Sprintf("k/%04d", i), fmt.Sprintf("v%d", i))
	}
	for i := 0; i < n; i += 10 {
		mustPut(t, lc, ctx, fmt.Sprintf("k/%04d", i), "overwritten")
	}
	mustDel(t, lc, ctx, "before")
	last := mustPut(t, lc, ctx, "last", "x")
	if _, err := lc.Compact(ctx, last.Header.Revision-50); err != nil {
		t.Fatalf("compact: %v", err)
	}
	watch := clients[(follower+1)%3] // not the stopped one; used after restart on the follower

	fc, kvs := restartBehind(t, ctx, ms[follower], last.Header.Revision, "k/", n)
	for i, kv := range kvs {
		want := fmt.Sprintf("v%d", i)
		if i%10 == 0 {
			want = "overwritten"
		}
		if string(kv.Value) != want {
			t.Fatalf("follower %s = %q, want %q", kv.Key, kv.Value, want)
		}
	}
	if g, _ := fc.Get(ctx, "before", clientv3.WithSerializable()); g != nil && len(g.Kvs) != 0 {
		t.Fatal("a key deleted while the follower was down is still there")
	}
	ttl, err := fc.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	check(t, "lease on follower", err)
	if ttl.TTL <= 0 || len(ttl.Keys) != 1 {
		t.Fatalf("lease after snapshot: ttl %d keys %q", ttl.TTL, ttl.Keys)
	}
	// History below the compaction point is gone on the follower too.
	if _, err := fc.Get(ctx, "k/0001", clientv3.WithRev(2), clientv3.WithSerializable()); err == nil {
		t.Fatal("revision below the compaction readable on the follower")
	}

	// A watcher on the caught-up follower sees new writes; new writes are
	// replicated to it through the log again.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wch := fc.Watch(wctx, "after", clientv3.WithCreatedNotify())
	<-wch
	after := mustPut(t, watch, ctx, "after", "snapshot")
	select {
	case wr := <-wch:
		if len(wr.Events) != 1 || wr.Events[0].Kv.ModRevision != after.Header.Revision {
			t.Fatalf("watch on follower: %+v", wr)
		}
	case <-ctx.Done():
		t.Fatal("no watch event on the follower")
	}
	err = framework.WaitFor(10*time.Second, 50*time.Millisecond, func() (bool, error) {
		r, err := fc.Get(ctx, "after", clientv3.WithSerializable())
		return err == nil && len(r.Kvs) == 1, nil
	})
	check(t, "follower follows after the snapshot", err)

	rev := after.Header.Revision
	var hashes []uint32
	for i, m := range ms {
		c := clients[i]
		if i == follower {
			c = fc
		}
		h, err := c.HashKV(ctx, m.ClientURL[len("http://"):], rev)
		check(t, "hashkv", err)
		hashes = append(hashes, h.Hash)
	}
	if hashes[0] != hashes[1] || hashes[1] != hashes[2] {
		t.Fatalf("HashKV at %d differs between members: %v", rev, hashes)
	}

	// The installed state survives kill -9 and a restart.
	ms[follower].Kill9()
	ms[follower].StartAgain()
	fc = ms[follower].Client()
	resp, err := fc.Get(ctx, "k/", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
	check(t, "get after restart", err)
	if resp.Count != n {
		t.Fatalf("after kill -9 the follower has %d of %d keys", resp.Count, n)
	}
}

// TestSnapshotCatchUpBytes: with --snapshot-catchup-bytes the leader cuts
// its Raft log by the size of its entries, not only by their count. A
// follower stopped while 4 MiB of large puts go by (far fewer entries than
// --snapshot-catchup-entries) finds its next entry cut at a 1 MiB bound and
// catches up through a snapshot, with every write.
func TestSnapshotCatchUpBytes(t *testing.T) {
	if !ours() {
		t.Skip("--snapshot-catchup-bytes is metastore's own flag")
	}
	ms := framework.StartCluster(t, 3, framework.Options{ExtraArgs: []string{
		"--snapshot-count", "100000", "--snapshot-catchup-entries", "5000", "--snapshot-catchup-bytes", "1MiB",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	leader := leaderOf(t, ctx, ms)
	follower := (leader + 1) % len(ms)
	lc := ms[leader].Client()
	mustPut(t, lc, ctx, "before", "stop")
	ms[follower].Stop()

	const n = 40
	value := strings.Repeat("x", 100<<10)
	for i := range n {
		mustPut(t, lc, ctx, fmt.Sprintf("big/%02d", i), value)
	}
	last := mustPut(t, lc, ctx, "last", "x")

	// The log, cut by bytes, no longer holds the follower's next entry.
	_, kvs := restartBehind(t, ctx, ms[follower], last.Header.Revision, "big/", n)
	for _, kv := range kvs {
		if string(kv.Value) != value {
			t.Fatalf("follower %s holds %d bytes, want %d", kv.Key, len(kv.Value), len(value))
		}
	}
}

// restartBehind starts m, a follower stopped while the leader's log was cut
// past its next entry, waits until it serves revision rev from its own
// state, checks it caught up through a snapshot (metastore logs it), and
// returns its client and the n keys under prefix it holds.
func restartBehind(t *testing.T, ctx context.Context, m *framework.Member, rev int64, prefix string, n int) (*clientv3.Client, []*mvccpb.KeyValue) {
	t.Helper()
	m.StartAgain()
	c := m.Client()
	err := framework.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		resp, err := c.Get(ctx, "last", clientv3.WithSerializable())
		return err == nil && len(resp.Kvs) == 1 && resp.Header.Revision >= rev, nil
	})
	check(t, "follower catches up", err)
	if ours() && !strings.Contains(m.Logs(), "installed a snapshot") {
		t.Fatalf("the follower caught up without a snapshot; its log:\n%s", m.Logs())
	}
	resp, err := c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSerializable())
	check(t, "serializable get on follower", err)
	if len(resp.Kvs) != n {
		t.Fatalf("follower has %d of %d keys under %s", len(resp.Kvs), n, prefix)
	}
	return c, resp.Kvs
}
