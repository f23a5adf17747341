package e2e

import (
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestKVRangeOptions covers every Range option through clientv3.
func TestKVRangeOptions(t *testing.T) {
	_, c, ctx := setup(t)
	// Revisions: foo=2, foo/a=3, foo/b=4, foo/c=5, fop=6, foo/a again=7.
	for _, kv := range [][2]string{{"foo", "bar"}, {"foo/a", "3"}, {"foo/b", "1"}, {"foo/c", "2"}, {"fop", "x"}, {"foo/a", "4"}} {
		_, err := c.Put(ctx, kv[0], kv[1])
		check(t, "put "+kv[0], err)
	}

	get := func(key string, opts ...clientv3.OpOption) *clientv3.GetResponse {
		t.Helper()
		r, err := c.Get(ctx, key, opts...)
		check(t, "get "+key, err)
		if r.Header.Revision != 7 {
			t.Fatalf("get %q: header revision %d, want current revision 7", key, r.Header.Revision)
		}
		return r
	}
	expectKeys := func(name string, r *clientv3.GetResponse, want []string, count int64, more bool) {
		t.Helper()
		if got := keys(r.Kvs); !equalStrings(got, want) || r.Count != count || r.More != more {
			t.Fatalf("%s: keys %q count %d more %v; want %q count %d more %v", name, got, r.Count, r.More, want, count, more)
		}
	}

	r := get("foo")
	expectKeys("single", r, []string{"foo"}, 1, false)
	if kv := r.Kvs[0]; string(kv.Value) != "bar" || kv.CreateRevision != 2 || kv.ModRevision != 2 || kv.Version != 1 || kv.Lease != 0 {
		t.Fatalf("foo = %+v", kv)
	}
	if r := get("foo/a"); r.Kvs[0].CreateRevision != 3 || r.Kvs[0].ModRevision != 7 || r.Kvs[0].Version != 2 || string(r.Kvs[0].Value) != "4" {
		t.Fatalf("foo/a = %+v", r.Kvs[0])
	}
	expectKeys("missing", get("nope"), nil, 0, false)
	expectKeys("prefix foo/", get("foo/", clientv3.WithPrefix()), []string{"foo/a", "foo/b", "foo/c"}, 3, false)
	expectKeys("prefix foo", get("foo", clientv3.WithPrefix()), []string{"foo", "foo/a", "foo/b", "foo/c"}, 4, false)
	expectKeys("prefix+limit", get("foo/", clientv3.WithPrefix(), clientv3.WithLimit(2)), []string{"foo/a", "foo/b"}, 3, true)
	expectKeys("limit=count", get("foo/", clientv3.WithPrefix(), clientv3.WithLimit(3)), []string{"foo/a", "foo/b", "foo/c"}, 3, false)
	expectKeys("range [foo/a,foo/c)", get("foo/a", clientv3.WithRange("foo/c")), []string{"foo/a", "foo/b"}, 2, false)
	expectKeys("from-key foo/b", get("foo/b", clientv3.WithFromKey()), []string{"foo/b", "foo/c", "fop"}, 3, false)
	expectKeys("all keys", get("\x00", clientv3.WithFromKey()), []string{"foo", "foo/a", "foo/b", "foo/c", "fop"}, 5, false)

	// Historical reads: the value at that revision, header still current.
	if r := get("foo/a", clientv3.WithRev(3)); len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "3" || r.Kvs[0].ModRevision != 3 {
		t.Fatalf("foo/a at rev 3 = %+v", r.Kvs)
	}
	expectKeys("prefix at rev 4", get("foo/", clientv3.WithPrefix(), clientv3.WithRev(4)), []string{"foo/a", "foo/b"}, 2, false)

	sorted := []struct {
		name   string
		target clientv3.SortTarget
		order  clientv3.SortOrder
		want   []string
	}{
		{"key desc", clientv3.SortByKey, clientv3.SortDescend, []string{"foo/c", "foo/b", "foo/a"}},
		{"value asc", clientv3.SortByValue, clientv3.SortAscend, []string{"foo/b", "foo/c", "foo/a"}},
		{"value desc", clientv3.SortByValue, clientv3.SortDescend, []string{"foo/a", "foo/c", "foo/b"}},
		{"create desc", clientv3.SortByCreateRevision, clientv3.SortDescend, []string{"foo/c", "foo/b", "foo/a"}},
		{"mod asc", clientv3.SortByModRevision, clientv3.SortAscend, []string{"foo/b", "foo/c", "foo/a"}},
		{"version desc", clientv3.SortByVersion, clientv3.SortDescend, []string{"foo/a", "foo/b", "foo/c"}},
		// A target other than key with order NONE sorts ascending.
		{"value none", clientv3.SortByValue, clientv3.SortNone, []string{"foo/b", "foo/c", "foo/a"}},
	}
	for _, s := range sorted {
		expectKeys("sort "+s.name, get("foo/", clientv3.WithPrefix(), clientv3.WithSort(s.target, s.order)), s.want, 3, false)
	}
	// Sorting happens before the limit is applied.
	expectKeys("sort value desc limit 1", get("foo/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortDescend), clientv3.WithLimit(1)), []string{"foo/a"}, 3, true)

	r = get("foo/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	expectKeys("keys-only", r, []string{"foo/a", "foo/b", "foo/c"}, 3, false)
	for _, kv := range r.Kvs {
		if len(kv.Value) != 0 || kv.ModRevision == 0 {
			t.Fatalf("keys-only kv %+v: want no value but revisions", kv)
		}
	}
	r = get("foo/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	expectKeys("count-only", r, nil, 3, false)

	// Min/max revision filters cut kvs, but count covers the whole range.
	expectKeys("min-mod-rev 5", get("foo/", clientv3.WithPrefix(), clientv3.WithMinModRev(5)), []string{"foo/a", "foo/c"}, 3, false)
	expectKeys("max-create-rev 3", get("foo/", clientv3.WithPrefix(), clientv3.WithMaxCreateRev(3)), []string{"foo/a"}, 3, false)

	expectKeys("serializable", get("foo/", clientv3.WithPrefix(), clientv3.WithSerializable()), []string{"foo/a", "foo/b", "foo/c"}, 3, false)
}

func TestKVPutDelete(t *testing.T) {
	_, c, ctx := setup(t)
	p1, err := c.Put(ctx, "k", "v1")
	check(t, "put", err)
	if p1.PrevKv != nil {
		t.Fatalf("prev kv without WithPrevKV: %+v", p1.PrevKv)
	}
	p2, err := c.Put(ctx, "k", "v2", clientv3.WithPrevKV())
	check(t, "put prev-kv", err)
	if p2.Header.Revision != p1.Header.Revision+1 {
		t.Fatalf("revision %d after %d", p2.Header.Revision, p1.Header.Revision)
	}
	if p2.PrevKv == nil || string(p2.PrevKv.Value) != "v1" || p2.PrevKv.ModRevision != p1.Header.Revision || p2.PrevKv.Version != 1 {
		t.Fatalf("prev kv = %+v", p2.PrevKv)
	}
	// Arbitrary bytes, not UTF-8.
	bin := string([]byte{0xff, 0x00, 0xfe})
	_, err = c.Put(ctx, bin, bin)
	check(t, "put binary", err)
	if r, err := c.Get(ctx, bin); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != bin {
		t.Fatalf("get binary: %v %+v", err, r)
	}

	for _, k := range []string{"p/1", "p/2", "p/3", "q"} {
		_, err := c.Put(ctx, k, "x"+k)
		check(t, "put "+k, err)
	}
	before := mustGet(t, c, ctx, "q").Header.Revision
	d, err := c.Delete(ctx, "p/", clientv3.WithPrefix(), clientv3.WithPrevKV())
	check(t, "delete prefix", err)
	if d.Deleted != 3 || !equalStrings(keys(d.PrevKvs), []string{"p/1", "p/2", "p/3"}) || string(d.PrevKvs[1].Value) != "xp/2" {
		t.Fatalf("delete prefix: deleted %d prev %q", d.Deleted, keys(d.PrevKvs))
	}
	if d.Header.Revision != before+1 {
		t.Fatalf("one delete of 3 keys must take one revision: %d -> %d", before, d.Header.Revision)
	}
	if r := mustGet(t, c, ctx, "p/", clientv3.WithPrefix()); r.Count != 0 {
		t.Fatalf("prefix still has %d keys", r.Count)
	}
	// Deleting nothing does not create a revision.
	d, err = c.Delete(ctx, "p/", clientv3.WithPrefix())
	check(t, "delete nothing", err)
	if d.Deleted != 0 || d.Header.Revision != before+1 {
		t.Fatalf("empty delete: deleted %d revision %d, want 0 and %d", d.Deleted, d.Header.Revision, before+1)
	}
	// A re-created key starts a new life: version 1, new create revision.
	_, err = c.Put(ctx, "p/1", "again")
	check(t, "recreate", err)
	kv := mustGet(t, c, ctx, "p/1").Kvs[0]
	if kv.Version != 1 || kv.CreateRevision != before+2 {
		t.Fatalf("recreated kv %+v", kv)
	}
}

func TestTxnCompares(t *testing.T) {
	_, c, ctx := setup(t)
	p1 := mustPut(t, c, ctx, "k1", "v1")
	mustPut(t, c, ctx, "k1", "v2")
	lease, err := c.Grant(ctx, 60)
	check(t, "grant", err)
	mustPut(t, c, ctx, "kl", "leased", clientv3.WithLease(lease.ID))
	cur := mustGet(t, c, ctx, "k1").Header.Revision

	tx, err := c.Txn(ctx).If(
		clientv3.Compare(clientv3.Value("k1"), "=", "v2"),
		clientv3.Compare(clientv3.Version("k1"), "=", 2),
		clientv3.Compare(clientv3.CreateRevision("k1"), "=", p1.Header.Revision),
		clientv3.Compare(clientv3.ModRevision("k1"), "<", cur+1),
		clientv3.Compare(clientv3.LeaseValue("kl"), "=", lease.ID),
		clientv3.Compare(clientv3.Value("k1"), "!=", "zzz"),
		clientv3.Compare(clientv3.Version("missing"), "=", 0), // a missing key compares as zero
	).Then(
		clientv3.OpPut("a", "1"), clientv3.OpPut("b", "2"), clientv3.OpGet("k1"),
	).Else(
		clientv3.OpPut("else", "1"),
	).Commit()
	check(t, "txn", err)
	if !tx.Succeeded || len(tx.Responses) != 3 {
		t.Fatalf("txn succeeded=%v responses=%d", tx.Succeeded, len(tx.Responses))
	}
	if tx.Header.Revision != cur+1 {
		t.Fatalf("txn with 2 puts: revision %d, want %d (one revision per txn)", tx.Header.Revision, cur+1)
	}
	if kvs := tx.Responses[2].GetResponseRange().Kvs; len(kvs) != 1 || string(kvs[0].Value) != "v2" {
		t.Fatalf("txn get = %+v", kvs)
	}
	r := mustGet(t, c, ctx, "a", clientv3.WithRange("c"))
	if r.Kvs[0].ModRevision != cur+1 || r.Kvs[1].ModRevision != cur+1 {
		t.Fatalf("txn puts at revisions %d,%d want %d", r.Kvs[0].ModRevision, r.Kvs[1].ModRevision, cur+1)
	}

	// Each compare alone decides the branch.
	single := []struct {
		cmp  clientv3.Cmp
		want bool
	}{
		{clientv3.Compare(clientv3.Value("k1"), "=", "v1"), false},
		{clientv3.Compare(clientv3.Value("missing"), "=", ""), false}, // VALUE on a missing key always fails
		{clientv3.Compare(clientv3.Value("missing"), "!=", "x"), false},
		{clientv3.Compare(clientv3.Version("k1"), ">", 2), false},
		{clientv3.Compare(clientv3.Version("k1"), ">", 1), true},
		{clientv3.Compare(clientv3.CreateRevision("k1"), "!=", p1.Header.Revision), false},
		{clientv3.Compare(clientv3.ModRevision("k1"), ">", cur+5), false},
		{clientv3.Compare(clientv3.LeaseValue("kl"), "=", lease.ID+1), false},
		{clientv3.Compare(clientv3.LeaseValue("k1"), "=", 0), true},
		// With a range every key in it must pass: a=1, b=2.
		{clientv3.Compare(clientv3.Version("a"), "=", 1).WithRange("c"), true},
		{clientv3.Compare(clientv3.Value("a"), "=", "1").WithRange("c"), false},
		{clientv3.Compare(clientv3.Value("a"), "=", "1").WithPrefix(), true},
	}
	for i, s := range single {
		tx, err := c.Txn(ctx).If(s.cmp).Else(clientv3.OpGet("k1")).Commit()
		check(t, "txn single compare", err)
		if tx.Succeeded != s.want {
			t.Fatalf("compare #%d: succeeded=%v want %v", i, tx.Succeeded, s.want)
		}
		if !s.want && (len(tx.Responses) != 1 || len(tx.Responses[0].GetResponseRange().Kvs) != 1) {
			t.Fatalf("compare #%d: else branch responses %+v", i, tx.Responses)
		}
	}

	// A read-only txn does not bump the revision.
	before := mustGet(t, c, ctx, "k1").Header.Revision
	tx, err = c.Txn(ctx).Then(clientv3.OpGet("k1")).Commit()
	check(t, "read-only txn", err)
	if tx.Header.Revision != before {
		t.Fatalf("read-only txn revision %d, want %d", tx.Header.Revision, before)
	}
	// Nested txn.
	tx, err = c.Txn(ctx).Then(clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.Value("a"), "=", "1")},
		[]clientv3.Op{clientv3.OpPut("nested", "yes")}, nil)).Commit()
	check(t, "nested txn", err)
	if !tx.Responses[0].GetResponseTxn().Succeeded {
		t.Fatal("nested txn did not succeed")
	}
	if r := mustGet(t, c, ctx, "nested"); len(r.Kvs) != 1 {
		t.Fatal("nested put missing")
	}
}

func TestCompactionAndHistory(t *testing.T) {
	_, c, ctx := setup(t)
	for _, v := range []string{"v1", "v2", "v3"} { // revisions 2, 3, 4
		mustPut(t, c, ctx, "k", v)
	}
	mustPut(t, c, ctx, "gone", "x")  // 5
	mustDel(t, c, ctx, "gone")       // 6
	mustPut(t, c, ctx, "other", "y") // 7

	_, err := c.Get(ctx, "k", clientv3.WithRev(8))
	requireErr(t, err, rpctypes.ErrFutureRev)

	_, err = c.Compact(ctx, 6, clientv3.WithCompactPhysical())
	check(t, "compact 6 physical", err)

	_, err = c.Get(ctx, "k", clientv3.WithRev(5))
	requireErr(t, err, rpctypes.ErrCompacted)
	// Reading exactly at the compaction revision is allowed.
	r := mustGet(t, c, ctx, "k", clientv3.WithRev(6))
	if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v3" || r.Header.Revision != 7 {
		t.Fatalf("k at compacted rev 6: %+v header %d", r.Kvs, r.Header.Revision)
	}
	if r := mustGet(t, c, ctx, "gone", clientv3.WithRev(6)); len(r.Kvs) != 0 {
		t.Fatalf("deleted key visible at rev 6: %+v", r.Kvs)
	}
	_, err = c.Compact(ctx, 6)
	requireErr(t, err, rpctypes.ErrCompacted)
	_, err = c.Compact(ctx, 5)
	requireErr(t, err, rpctypes.ErrCompacted)
	_, err = c.Compact(ctx, 100)
	requireErr(t, err, rpctypes.ErrFutureRev)

	// A watch from before the compaction is canceled with the compact revision.
	// (A closed channel gives a zero response, which fails the check.)
	wr := <-c.Watch(ctx, "k", clientv3.WithRev(3))
	if wr.CompactRevision != 6 || !wr.Canceled {
		t.Fatalf("watch from compacted rev: compact_revision %d canceled %v err %v", wr.CompactRevision, wr.Canceled, wr.Err())
	}
	requireErr(t, wr.Err(), rpctypes.ErrCompacted)

	// Compacting to the current revision keeps the latest values.
	_, err = c.Compact(ctx, 7, clientv3.WithCompactPhysical())
	check(t, "compact 7", err)
	r = mustGet(t, c, ctx, "", clientv3.WithFromKey())
	if !equalStrings(keys(r.Kvs), []string{"k", "other"}) {
		t.Fatalf("after compaction keys %q", keys(r.Kvs))
	}
}
