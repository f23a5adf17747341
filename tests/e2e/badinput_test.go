package e2e

import (
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestBadInput sends invalid requests; each must get etcd's exact error and
// the server must keep serving afterwards.
func TestBadInput(t *testing.T) {
	const maxRequestBytes = 64 * 1024
	_, c, ctx := setup(t, fmt.Sprintf("--max-request-bytes=%d", maxRequestBytes))
	mustPut(t, c, ctx, "a", "1")
	mustPut(t, c, ctx, "b", "2")

	t.Run("empty key", func(t *testing.T) {
		_, err := c.Put(ctx, "", "v")
		requireErr(t, err, rpctypes.ErrEmptyKey)
		_, err = c.Get(ctx, "")
		requireErr(t, err, rpctypes.ErrEmptyKey)
		_, err = c.Delete(ctx, "")
		requireErr(t, err, rpctypes.ErrEmptyKey)
		_, err = c.Txn(ctx).Then(clientv3.OpPut("", "v")).Commit()
		requireErr(t, err, rpctypes.ErrEmptyKey)
	})

	t.Run("inverted range", func(t *testing.T) {
		// etcd treats range_end < key as an empty range, not an error.
		rev := mustGet(t, c, ctx, "a").Header.Revision
		d, err := c.Delete(ctx, "b", clientv3.WithRange("a"))
		check(t, "delete [b,a)", err)
		if d.Deleted != 0 || d.Header.Revision != rev {
			t.Fatalf("delete [b,a): deleted %d revision %d, want 0 and %d", d.Deleted, d.Header.Revision, rev)
		}
		if r := mustGet(t, c, ctx, "b", clientv3.WithRange("a")); r.Count != 0 || len(r.Kvs) != 0 {
			t.Fatalf("get [b,a) = %d kvs", r.Count)
		}
		if r := mustGet(t, c, ctx, "a", clientv3.WithRange("c")); r.Count != 2 {
			t.Fatalf("keys deleted by an inverted range: %d left", r.Count)
		}
	})

	t.Run("future and compacted revision", func(t *testing.T) {
		rev := mustGet(t, c, ctx, "a").Header.Revision
		_, err := c.Get(ctx, "a", clientv3.WithRev(rev+1))
		requireErr(t, err, rpctypes.ErrFutureRev)
		_, err = c.Txn(ctx).Then(clientv3.OpGet("a", clientv3.WithRev(rev+10))).Commit()
		requireErr(t, err, rpctypes.ErrFutureRev)
		_, err = c.Compact(ctx, rev+1)
		requireErr(t, err, rpctypes.ErrFutureRev)
		_, err = c.Compact(ctx, rev)
		check(t, "compact", err)
		_, err = c.Get(ctx, "a", clientv3.WithRev(rev-1))
		requireErr(t, err, rpctypes.ErrCompacted)
		_, err = c.Compact(ctx, rev)
		requireErr(t, err, rpctypes.ErrCompacted)
	})

	t.Run("request too large", func(t *testing.T) {
		big := strings.Repeat("x", maxRequestBytes+1024)
		_, err := c.Put(ctx, "big", big)
		requireErr(t, err, rpctypes.ErrRequestTooLarge)
		_, err = c.Txn(ctx).Then(clientv3.OpPut("big", big)).Commit()
		requireErr(t, err, rpctypes.ErrRequestTooLarge)
		if r := mustGet(t, c, ctx, "big"); r.Count != 0 {
			t.Fatal("oversized put was applied")
		}
		// Just under the limit is fine.
		mustPut(t, c, ctx, "big", strings.Repeat("x", maxRequestBytes-1024))
	})

	t.Run("too many txn ops", func(t *testing.T) {
		ops := make([]clientv3.Op, 129) // default --max-txn-ops is 128
		for i := range ops {
			ops[i] = clientv3.OpPut(fmt.Sprintf("op%03d", i), "v")
		}
		_, err := c.Txn(ctx).Then(ops...).Commit()
		requireErr(t, err, rpctypes.ErrTooManyOps)
		_, err = c.Txn(ctx).Then(ops[:128]...).Commit()
		check(t, "txn with 128 ops", err)
	})

	t.Run("duplicate txn keys", func(t *testing.T) {
		_, err := c.Txn(ctx).Then(clientv3.OpPut("d", "1"), clientv3.OpPut("d", "2")).Commit()
		requireErr(t, err, rpctypes.ErrDuplicateKey)
		_, err = c.Txn(ctx).Then(clientv3.OpPut("d/1", "1"), clientv3.OpDelete("d/", clientv3.WithPrefix())).Commit()
		requireErr(t, err, rpctypes.ErrDuplicateKey)
		_, err = c.Txn(ctx).Else(clientv3.OpPut("d", "1"), clientv3.OpPut("d", "2")).Commit()
		requireErr(t, err, rpctypes.ErrDuplicateKey)
		// The same key in different branches, or read twice, is fine.
		_, err = c.Txn(ctx).Then(clientv3.OpPut("d", "1"), clientv3.OpGet("d")).Else(clientv3.OpPut("d", "2")).Commit()
		check(t, "same key in both branches", err)
	})

	t.Run("unknown lease", func(t *testing.T) {
		const lease = clientv3.LeaseID(0x1234567)
		_, err := c.Put(ctx, "l", "v", clientv3.WithLease(lease))
		requireErr(t, err, rpctypes.ErrLeaseNotFound)
		_, err = c.Revoke(ctx, lease)
		requireErr(t, err, rpctypes.ErrLeaseNotFound)
		_, err = c.KeepAliveOnce(ctx, lease)
		requireErr(t, err, rpctypes.ErrLeaseNotFound)
		ttl, err := c.TimeToLive(ctx, lease)
		check(t, "timetolive of an unknown lease", err)
		if ttl.TTL != -1 {
			t.Fatalf("timetolive of an unknown lease: TTL %d, want -1", ttl.TTL)
		}
	})

	// Still serving.
	p := mustPut(t, c, ctx, "after", "ok")
	if r := mustGet(t, c, ctx, "after"); len(r.Kvs) != 1 || r.Kvs[0].ModRevision != p.Header.Revision {
		t.Fatalf("server misbehaves after bad input: %+v", r.Kvs)
	}
}
