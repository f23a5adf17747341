package txn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap/zaptest"

	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/mvcc/mvcctest"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

var bg = context.Background()

// fakeLeases records attach/detach calls.
type fakeLeases struct {
	ids map[int64]bool
	log []string
}

func (f *fakeLeases) Exists(id int64) bool { return f.ids[id] }
func (f *fakeLeases) Attach(_ storage.Batch, id int64, key []byte) error {
	f.log = append(f.log, fmt.Sprintf("attach %d %s", id, key))
	return nil
}
func (f *fakeLeases) Detach(_ storage.Batch, id int64, key []byte) error {
	f.log = append(f.log, fmt.Sprintf("detach %d %s", id, key))
	return nil
}

type env struct {
	t      *testing.T
	eng    storage.Engine
	store  *mvcc.Store
	ex     *Executor
	leases *fakeLeases
}

func newEnv(t *testing.T) *env {
	eng := memory.New()
	t.Cleanup(func() { _ = eng.Close() })
	s := mvcctest.Open(t, eng, zaptest.NewLogger(t), mvcc.WithCompactionSleepInterval(0))
	fl := &fakeLeases{ids: map[int64]bool{7: true, 8: true}}
	return &env{t: t, eng: eng, store: s, ex: New(s, fl, zaptest.NewLogger(t)), leases: fl}
}

// write runs fn with a fresh Writer and commits it when fn returns no error.
func (e *env) write(fn func(w *mvcc.Writer) error) error {
	b := e.eng.NewBatch()
	defer b.Close()
	w := e.store.NewWriter(b)
	if err := fn(w); err != nil {
		w.Close()
		return err
	}
	if err := w.Finish(); err != nil {
		return err
	}
	if err := b.Commit(false); err != nil {
		e.t.Fatal(err)
	}
	w.Commit()
	return nil
}

func (e *env) put(k, v string, opts ...func(*pb.PutRequest)) (*pb.PutResponse, error) {
	r := &pb.PutRequest{Key: []byte(k), Value: []byte(v)}
	for _, o := range opts {
		o(r)
	}
	var resp *pb.PutResponse
	err := e.write(func(w *mvcc.Writer) (err error) {
		resp, _, err = e.ex.Put(w, r)
		return err
	})
	return resp, err
}

func (e *env) mustPut(k, v string, opts ...func(*pb.PutRequest)) *pb.PutResponse {
	e.t.Helper()
	r, err := e.put(k, v, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) del(r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, []*mvccpb.Event) {
	var resp *pb.DeleteRangeResponse
	var evs []*mvccpb.Event
	if err := e.write(func(w *mvcc.Writer) (err error) {
		resp, evs, err = e.ex.DeleteRange(w, r)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return resp, evs
}

func (e *env) txn(r *pb.TxnRequest) (*pb.TxnResponse, []*mvccpb.Event, error) {
	var resp *pb.TxnResponse
	var evs []*mvccpb.Event
	err := e.write(func(w *mvcc.Writer) (err error) {
		resp, evs, err = e.ex.Txn(w, r)
		return err
	})
	return resp, evs, err
}

func (e *env) rng(r *pb.RangeRequest) *pb.RangeResponse {
	e.t.Helper()
	resp, err := e.ex.Range(bg, r)
	if err != nil {
		e.t.Fatalf("range %v: %v", r, err)
	}
	return resp
}

func (e *env) compact(rev int64) {
	e.t.Helper()
	if err := e.write(func(w *mvcc.Writer) error { _, err := w.Compact(rev); return err }); err != nil {
		e.t.Fatal(err)
	}
}

func keys(kvs []*mvccpb.KeyValue) string {
	var s []string
	for _, kv := range kvs {
		s = append(s, string(kv.Key))
	}
	return strings.Join(s, ",")
}

func withLease(id int64) func(*pb.PutRequest) { return func(r *pb.PutRequest) { r.Lease = id } }
func withPrev(r *pb.PutRequest)               { r.PrevKv = true }
func ignoreValue(r *pb.PutRequest)            { r.IgnoreValue = true }
func ignoreLease(r *pb.PutRequest)            { r.IgnoreLease = true }

// rangeFixture builds:
//
//	rev 2 put c=3   rev 3 put a=5   rev 4 put e=1   rev 5 put b=4
//	rev 6 put d=2   rev 7 put a=9 (version 2)   rev 8 put c=7 (version 2) lease 7
//	rev 9 put c=0 (version 3) lease 7
func rangeFixture(t *testing.T) *env {
	e := newEnv(t)
	e.mustPut("c", "3")
	e.mustPut("a", "5")
	e.mustPut("e", "1")
	e.mustPut("b", "4")
	e.mustPut("d", "2")
	e.mustPut("a", "9")
	e.mustPut("c", "7", withLease(7))
	e.mustPut("c", "0", withLease(7))
	if e.store.Rev() != 9 {
		t.Fatalf("fixture rev %d", e.store.Rev())
	}
	return e
}

func TestRangeSortLimitCountFilters(t *testing.T) {
	e := rangeFixture(t)
	all := []byte("\x00")
	tests := []struct {
		name  string
		req   *pb.RangeRequest
		keys  string
		more  bool
		count int64
	}{
		{"all", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all}, "a,b,c,d,e", false, 5},
		{"single", &pb.RangeRequest{Key: []byte("c")}, "c", false, 1},
		{"missing single", &pb.RangeRequest{Key: []byte("cc")}, "", false, 0},
		{"prefix end", &pb.RangeRequest{Key: []byte("b"), RangeEnd: []byte("d")}, "b,c", false, 2},
		{"end before key", &pb.RangeRequest{Key: []byte("d"), RangeEnd: []byte("b")}, "", false, 0},
		{"limit", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, Limit: 2}, "a,b", true, 5},
		{"limit exact", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, Limit: 5}, "a,b,c,d,e", false, 5},
		{"limit over", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, Limit: 50}, "a,b,c,d,e", false, 5},
		{"key ascend = default", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, SortTarget: pb.RangeRequest_KEY, SortOrder: pb.RangeRequest_ASCEND}, "a,b,c,d,e", false, 5},
		{"key descend", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, SortTarget: pb.RangeRequest_KEY, SortOrder: pb.RangeRequest_DESCEND}, "e,d,c,b,a", false, 5},
		{"key descend limit", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, SortOrder: pb.RangeRequest_DESCEND, Limit: 2}, "e,d", true, 5},
		{"value none means ascend", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, SortTarget: pb.RangeRequest_VALUE}, "c,e,d,b,a", false, 5},
		{"value descend", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_DESCEND}, "a,b,d,e,c", false, 5},
		{"create ascend", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, SortTarget: pb.RangeRequest_CREATE}, "c,a,e,b,d", false, 5},
		{"create descend limit", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, SortTarget: pb.RangeRequest_CREATE, SortOrder: pb.RangeRequest_DESCEND, Limit: 3}, "d,b,e", true, 5},
		{"mod ascend", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_ASCEND}, "e,b,d,a,c", false, 5},
		{"mod descend", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_DESCEND}, "c,a,d,b,e", false, 5},
		{"version descend", &pb.RangeRequest{Key: []byte("c"), RangeEnd: []byte("d"), SortTarget: pb.RangeRequest_VERSION, SortOrder: pb.RangeRequest_DESCEND}, "c", false, 1},
		{"min mod filter keeps count", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, MinModRevision: 6}, "a,c,d", false, 5},
		{"max mod filter", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, MaxModRevision: 5}, "b,e", false, 5},
		{"min create filter", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, MinCreateRevision: 4}, "b,d,e", false, 5},
		{"max create filter", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, MaxCreateRevision: 3}, "a,c", false, 5},
		{"filter then limit", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, MinCreateRevision: 3, Limit: 2}, "a,b", true, 5},
		{"filter limit no more", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, MinCreateRevision: 5, Limit: 2}, "b,d", false, 5},
		{"count only", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, CountOnly: true, Limit: 1}, "", false, 5},
		{"historical", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, Revision: 4}, "a,c,e", false, 3},
		{"historical limit", &pb.RangeRequest{Key: []byte("a"), RangeEnd: all, Revision: 4, Limit: 1}, "a", true, 3},
		{"serializable same", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), Serializable: true}, "a,b", false, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.rng(tc.req)
			if got := keys(resp.Kvs); got != tc.keys || resp.More != tc.more || resp.Count != tc.count {
				t.Fatalf("got keys %q more %v count %d; want %q %v %d", got, resp.More, resp.Count, tc.keys, tc.more, tc.count)
			}
			if resp.Header.Revision != 9 {
				t.Fatalf("header revision %d, want the current 9", resp.Header.Revision)
			}
		})
	}
}

func TestRangeKeysOnlyAndValues(t *testing.T) {
	e := rangeFixture(t)
	resp := e.rng(&pb.RangeRequest{Key: []byte("c")})
	kv := resp.Kvs[0]
	if string(kv.Value) != "0" || kv.CreateRevision != 2 || kv.ModRevision != 9 || kv.Version != 3 || kv.Lease != 7 {
		t.Fatalf("kv %v", kv)
	}
	resp = e.rng(&pb.RangeRequest{Key: []byte("c"), KeysOnly: true})
	kv = resp.Kvs[0]
	// etcd answers keys_only from its index: no value, no lease
	if kv.Value != nil || kv.Lease != 0 || kv.ModRevision != 9 || kv.Version != 3 {
		t.Fatalf("keys only kv %v", kv)
	}
	resp = e.rng(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), KeysOnly: true, SortTarget: pb.RangeRequest_VALUE})
	if keys(resp.Kvs) != "c,e,d,b,a" || resp.Kvs[0].Value != nil || resp.Kvs[0].Lease != 7 {
		t.Fatalf("keys only sorted by value: %v", resp.Kvs)
	}
}

func TestRangeRevisionErrors(t *testing.T) {
	e := rangeFixture(t)
	if _, err := e.ex.Range(bg, &pb.RangeRequest{Key: []byte("a"), Revision: 10}); !errors.Is(err, mvcc.ErrFutureRev) {
		t.Fatalf("future: %v", err)
	}
	e.compact(5)
	if _, err := e.ex.Range(bg, &pb.RangeRequest{Key: []byte("a"), Revision: 4}); !errors.Is(err, mvcc.ErrCompacted) {
		t.Fatalf("compacted: %v", err)
	}
	resp := e.rng(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), Revision: 5})
	if keys(resp.Kvs) != "a,b,c,e" || resp.Header.Revision != 9 {
		t.Fatalf("at compact rev: %s %d", keys(resp.Kvs), resp.Header.Revision)
	}
	// a negative revision means "current" in a plain range
	if resp := e.rng(&pb.RangeRequest{Key: []byte("a"), Revision: -3}); keys(resp.Kvs) != "a" {
		t.Fatal(keys(resp.Kvs))
	}
}

func TestRangeStream(t *testing.T) {
	e := newEnv(t)
	var want []string
	for i := 0; i < 95; i++ {
		k := fmt.Sprintf("k%03d", i)
		e.mustPut(k, strings.Repeat("v", 100))
		want = append(want, k)
	}
	e.ex.maxRequestBytes = 4096 // force several chunk sizes
	type result struct {
		keys  []string
		last  *pb.RangeResponse
		nresp int
	}
	run := func(r *pb.RangeRequest) result {
		var res result
		err := e.ex.RangeStream(bg, r, func(resp *pb.RangeResponse) error {
			res.nresp++
			if res.last != nil {
				t.Fatalf("response after the last one")
			}
			for _, kv := range resp.Kvs {
				res.keys = append(res.keys, string(kv.Key))
			}
			if resp.Header != nil {
				res.last = resp
			} else if resp.More || resp.Count != 0 {
				t.Fatalf("intermediate chunk has more/count: %v", resp)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := run(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")})
	if strings.Join(res.keys, ",") != strings.Join(want, ",") || res.last.Count != 95 || res.last.More || res.nresp < 3 {
		t.Fatalf("all: %d responses, %d keys, last %v", res.nresp, len(res.keys), res.last)
	}
	if res.last.Header.Revision != 96 {
		t.Fatalf("header rev %d", res.last.Header.Revision)
	}
	res = run(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), Limit: 25})
	if strings.Join(res.keys, ",") != strings.Join(want[:25], ",") || res.last.Count != 95 || !res.last.More {
		t.Fatalf("limit: %d keys, last %v", len(res.keys), res.last)
	}
	res = run(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), CountOnly: true})
	if len(res.keys) != 0 || res.last.Count != 95 || res.nresp != 1 {
		t.Fatalf("count only: %v", res.last)
	}
	if err := CheckRangeStreamRequest(&pb.RangeRequest{Key: []byte("a"), SortOrder: pb.RangeRequest_DESCEND}); err == nil || !strings.Contains(err.Error(), "Unimplemented") {
		t.Fatalf("custom sort: %v", err)
	}
	if err := CheckRangeStreamRequest(&pb.RangeRequest{Key: []byte("a"), MinModRevision: 3}); err == nil || !strings.Contains(err.Error(), "Unimplemented") {
		t.Fatalf("filters: %v", err)
	}
	if err := CheckRangeStreamRequest(&pb.RangeRequest{Key: []byte("a"), SortOrder: pb.RangeRequest_ASCEND}); err != nil {
		t.Fatalf("key ascend is default ordering: %v", err)
	}
}

func TestPutSemantics(t *testing.T) {
	e := newEnv(t)
	r := e.mustPut("a", "1", withPrev)
	if r.PrevKv != nil || r.Header.Revision != 2 {
		t.Fatalf("first put %v", r)
	}
	r = e.mustPut("a", "2", withPrev, withLease(7))
	if r.PrevKv == nil || string(r.PrevKv.Value) != "1" || r.Header.Revision != 3 {
		t.Fatalf("second put %v", r)
	}
	r = e.mustPut("a", "3") // no prev_kv unless asked
	if r.PrevKv != nil {
		t.Fatal("prev kv without asking")
	}
	if got := strings.Join(e.leases.log, ";"); got != "attach 7 a;detach 7 a" {
		t.Fatalf("lease log %q", got)
	}
	e.leases.log = nil
	e.mustPut("a", "4", withLease(8))
	e.mustPut("a", "", ignoreValue) // keeps the value, lease cleared
	kv := e.rng(&pb.RangeRequest{Key: []byte("a")}).Kvs[0]
	if string(kv.Value) != "4" || kv.Lease != 0 || kv.Version != 5 {
		t.Fatalf("ignore value: %v", kv)
	}
	e.mustPut("a", "5", withLease(7))
	e.mustPut("a", "6", ignoreLease)
	kv = e.rng(&pb.RangeRequest{Key: []byte("a")}).Kvs[0]
	if string(kv.Value) != "6" || kv.Lease != 7 {
		t.Fatalf("ignore lease: %v", kv)
	}
	if got := strings.Join(e.leases.log, ";"); got != "attach 8 a;detach 8 a;attach 7 a" {
		t.Fatalf("lease log %q", got)
	}
	rev := e.store.Rev()
	if _, err := e.put("zz", "", ignoreValue); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("ignore value on missing key: %v", err)
	}
	if _, err := e.put("zz", "x", ignoreLease); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("ignore lease on missing key: %v", err)
	}
	if _, err := e.put("zz", "x", withLease(99)); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("unknown lease: %v", err)
	}
	if e.store.Rev() != rev {
		t.Fatal("failed put bumped the revision")
	}
	// delete then put restarts version and create revision
	e.del(&pb.DeleteRangeRequest{Key: []byte("a")})
	e.mustPut("a", "x")
	kv = e.rng(&pb.RangeRequest{Key: []byte("a")}).Kvs[0]
	if kv.Version != 1 || kv.CreateRevision != e.store.Rev() {
		t.Fatalf("recreated: %v", kv)
	}
	if _, err := e.put("a", "", ignoreValue); err != nil {
		t.Fatal(err)
	}
	// nil LeaseIndex: every lease is unknown
	ex := New(e.store, nil, nil)
	err := e.write(func(w *mvcc.Writer) error {
		_, _, err := ex.Put(w, &pb.PutRequest{Key: []byte("q"), Lease: 7})
		return err
	})
	if !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("nil leases: %v", err)
	}
}

func TestDeleteRangeSemantics(t *testing.T) {
	e := newEnv(t)
	e.mustPut("a", "1")
	e.mustPut("b", "2", withLease(7))
	e.mustPut("c", "3")
	e.leases.log = nil
	resp, evs := e.del(&pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), PrevKv: true})
	if resp.Deleted != 2 || keys(resp.PrevKvs) != "a,b" || resp.Header.Revision != 5 || len(evs) != 2 {
		t.Fatalf("delete: %v events %d", resp, len(evs))
	}
	if evs[1].Type != mvccpb.Event_DELETE || string(evs[1].Kv.Key) != "b" || evs[1].Kv.ModRevision != 5 || evs[1].PrevKv.Lease != 7 {
		t.Fatalf("event %v", evs[1])
	}
	if got := strings.Join(e.leases.log, ";"); got != "detach 7 b" {
		t.Fatalf("lease log %q", got)
	}
	resp, _ = e.del(&pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("c")})
	if resp.Deleted != 0 || resp.Header.Revision != 5 || e.store.Rev() != 5 {
		t.Fatalf("deleting nothing: %v rev %d", resp, e.store.Rev())
	}
	resp, _ = e.del(&pb.DeleteRangeRequest{Key: []byte("c")})
	if resp.Deleted != 1 || resp.PrevKvs != nil || resp.Header.Revision != 6 {
		t.Fatalf("no prev kvs unless asked: %v", resp)
	}
	e.mustPut("x", "1")
	e.mustPut("y", "1")
	resp, _ = e.del(&pb.DeleteRangeRequest{Key: []byte("\x00"), RangeEnd: []byte("\x00")})
	if resp.Deleted != 2 {
		t.Fatalf("delete all: %v", resp)
	}
}

func cmp(key string, target pb.Compare_CompareTarget, result pb.Compare_CompareResult, v any) *pb.Compare {
	c := &pb.Compare{Key: []byte(key), Target: target, Result: result}
	switch target {
	case pb.Compare_VALUE:
		c.TargetUnion = &pb.Compare_Value{Value: []byte(v.(string))}
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: int64(v.(int))}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: int64(v.(int))}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: int64(v.(int))}
	case pb.Compare_LEASE:
		c.TargetUnion = &pb.Compare_Lease{Lease: int64(v.(int))}
	}
	return c
}

func TestTxnCompares(t *testing.T) {
	e := newEnv(t)
	e.mustPut("a", "m")               // rev 2
	e.mustPut("a", "m")               // rev 3, version 2
	e.mustPut("b", "x", withLease(7)) // rev 4
	eq, ne, gt, lt := pb.Compare_EQUAL, pb.Compare_NOT_EQUAL, pb.Compare_GREATER, pb.Compare_LESS
	tests := []struct {
		c    *pb.Compare
		want bool
	}{
		{cmp("a", pb.Compare_VALUE, eq, "m"), true},
		{cmp("a", pb.Compare_VALUE, ne, "m"), false},
		{cmp("a", pb.Compare_VALUE, gt, "l"), true},
		{cmp("a", pb.Compare_VALUE, lt, "l"), false},
		{cmp("a", pb.Compare_VERSION, eq, 2), true},
		{cmp("a", pb.Compare_VERSION, gt, 1), true},
		{cmp("a", pb.Compare_VERSION, lt, 2), false},
		{cmp("a", pb.Compare_CREATE, eq, 2), true},
		{cmp("a", pb.Compare_CREATE, ne, 2), false},
		{cmp("a", pb.Compare_MOD, eq, 3), true},
		{cmp("a", pb.Compare_MOD, lt, 4), true},
		{cmp("a", pb.Compare_MOD, gt, 3), false},
		{cmp("b", pb.Compare_LEASE, eq, 7), true},
		{cmp("b", pb.Compare_LEASE, gt, 0), true},
		{cmp("a", pb.Compare_LEASE, eq, 0), true},
		// missing key: a zero KeyValue, except VALUE which always fails
		{cmp("zz", pb.Compare_VERSION, eq, 0), true},
		{cmp("zz", pb.Compare_CREATE, eq, 0), true},
		{cmp("zz", pb.Compare_MOD, lt, 1), true},
		{cmp("zz", pb.Compare_LEASE, eq, 0), true},
		{cmp("zz", pb.Compare_VALUE, eq, ""), false},
		{cmp("zz", pb.Compare_VALUE, ne, "x"), false},
		// mismatched union: compares against 0
		{&pb.Compare{Key: []byte("a"), Target: pb.Compare_VERSION, Result: gt, TargetUnion: &pb.Compare_ModRevision{ModRevision: 100}}, true},
		// range compares: every key must pass
		{&pb.Compare{Key: []byte("a"), RangeEnd: []byte("c"), Target: pb.Compare_CREATE, Result: gt, TargetUnion: &pb.Compare_CreateRevision{CreateRevision: 1}}, true},
		{&pb.Compare{Key: []byte("a"), RangeEnd: []byte("c"), Target: pb.Compare_CREATE, Result: gt, TargetUnion: &pb.Compare_CreateRevision{CreateRevision: 2}}, false},
		{&pb.Compare{Key: []byte("a"), RangeEnd: []byte("\x00"), Target: pb.Compare_VERSION, Result: gt, TargetUnion: &pb.Compare_Version{Version: 0}}, true},
		{&pb.Compare{Key: []byte("x"), RangeEnd: []byte("z"), Target: pb.Compare_VALUE, Result: eq, TargetUnion: &pb.Compare_Value{Value: nil}}, false},
		{&pb.Compare{Key: []byte("x"), RangeEnd: []byte("z"), Target: pb.Compare_VERSION, Result: eq, TargetUnion: &pb.Compare_Version{Version: 0}}, true},
	}
	for i, tc := range tests {
		resp, evs, err := e.txn(&pb.TxnRequest{Compare: []*pb.Compare{tc.c}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Succeeded != tc.want {
			t.Errorf("%d: compare %v: got %v", i, tc.c, resp.Succeeded)
		}
		if resp.Header.Revision != 4 || len(evs) != 0 {
			t.Errorf("%d: empty txn changed revision: %d", i, resp.Header.Revision)
		}
	}
	if e.store.Rev() != 4 {
		t.Fatalf("read-only txns bumped the revision to %d", e.store.Rev())
	}
}

func opPut(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
}
func opGet(k, end string) *pb.RequestOp {
	r := &pb.RangeRequest{Key: []byte(k)}
	if end != "" {
		r.RangeEnd = []byte(end)
	}
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}
func opDel(k, end string) *pb.RequestOp {
	r := &pb.DeleteRangeRequest{Key: []byte(k), PrevKv: true}
	if end != "" {
		r.RangeEnd = []byte(end)
	}
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}
}
func opTxn(t *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: t}}
}

func TestTxnExecution(t *testing.T) {
	e := newEnv(t)
	e.mustPut("a", "1") // 2
	e.mustPut("b", "1") // 3
	req := &pb.TxnRequest{
		Compare: []*pb.Compare{cmp("a", pb.Compare_VALUE, pb.Compare_EQUAL, "1")},
		Success: []*pb.RequestOp{
			opGet("a", ""),
			opPut("a", "2"),
			opGet("a", ""), // sees the put
			opDel("b", ""),
			opTxn(&pb.TxnRequest{
				// nested compares see the state before the outer txn
				Compare: []*pb.Compare{cmp("a", pb.Compare_VALUE, pb.Compare_EQUAL, "1")},
				Success: []*pb.RequestOp{opPut("c", "1"), opGet("a", "\x00")},
				Failure: []*pb.RequestOp{opPut("d", "1")},
			}),
			opTxn(&pb.TxnRequest{
				Compare: []*pb.Compare{cmp("b", pb.Compare_VERSION, pb.Compare_EQUAL, 0)},
				Success: []*pb.RequestOp{opPut("e", "1")},
				Failure: []*pb.RequestOp{opPut("f", "1"), opGet("f", "")},
			}),
		},
		Failure: []*pb.RequestOp{opPut("z", "1")},
	}
	resp, evs, err := e.txn(req)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Succeeded || resp.Header.Revision != 4 || e.store.Rev() != 4 {
		t.Fatalf("txn: %v rev %d", resp, e.store.Rev())
	}
	r0 := resp.Responses[0].GetResponseRange()
	if string(r0.Kvs[0].Value) != "1" || r0.Header.Revision != 3 {
		t.Fatalf("first range %v", r0)
	}
	if p := resp.Responses[1].GetResponsePut(); p.Header.Revision != 4 {
		t.Fatalf("put %v", p)
	}
	r2 := resp.Responses[2].GetResponseRange()
	if string(r2.Kvs[0].Value) != "2" || r2.Kvs[0].ModRevision != 4 || r2.Kvs[0].Version != 2 || r2.Header.Revision != 4 {
		t.Fatalf("range after put %v", r2)
	}
	if d := resp.Responses[3].GetResponseDeleteRange(); d.Deleted != 1 || d.Header.Revision != 4 {
		t.Fatalf("delete %v", d)
	}
	n1 := resp.Responses[4].GetResponseTxn()
	if !n1.Succeeded || n1.Header.Revision != 0 || len(n1.Responses) != 2 {
		t.Fatalf("nested 1 %v", n1)
	}
	if got := keys(n1.Responses[1].GetResponseRange().Kvs); got != "a,c" {
		t.Fatalf("nested range sees %s", got)
	}
	// b existed before the txn: the nested compare (version == 0) fails
	n2 := resp.Responses[5].GetResponseTxn()
	if n2.Succeeded || keys(n2.Responses[1].GetResponseRange().Kvs) != "f" {
		t.Fatalf("nested 2 %v", n2)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, fmt.Sprintf("%s %s %d", ev.Type, ev.Kv.Key, ev.Kv.ModRevision))
	}
	if strings.Join(got, ";") != "PUT a 4;DELETE b 4;PUT c 4;PUT f 4" {
		t.Fatalf("events %v", got)
	}
	// failure branch
	resp, _, err = e.txn(&pb.TxnRequest{Compare: []*pb.Compare{cmp("a", pb.Compare_VALUE, pb.Compare_EQUAL, "1")}, Success: []*pb.RequestOp{opPut("y", "1")}, Failure: []*pb.RequestOp{opGet("a", "")}})
	if err != nil || resp.Succeeded || resp.Header.Revision != 4 || len(resp.Responses) != 1 {
		t.Fatalf("failure branch %v %v", resp, err)
	}
}

func TestTxnChecksFailBeforeWriting(t *testing.T) {
	e := newEnv(t)
	e.mustPut("a", "1")
	e.compact(2)
	e.mustPut("a", "2") // rev 3
	tests := []struct {
		name string
		ops  []*pb.RequestOp
		want error
	}{
		{"future range", []*pb.RequestOp{opPut("x", "1"), {Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: 4}}}}, mvcc.ErrFutureRev},
		{"compacted range", []*pb.RequestOp{opPut("x", "1"), {Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: 1}}}}, mvcc.ErrCompacted},
		{"negative revision", []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: -1}}}}, mvcc.ErrCompacted},
		{"ignore value missing", []*pb.RequestOp{opPut("x", "1"), {Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("zz"), IgnoreValue: true}}}}, ErrKeyNotFound},
		{"unknown lease", []*pb.RequestOp{opPut("x", "1"), {Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("y"), Lease: 99}}}}, ErrLeaseNotFound},
		{"nested unknown lease", []*pb.RequestOp{opPut("x", "1"), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("y"), Lease: 99}}}}})}, ErrLeaseNotFound},
	}
	for _, tc := range tests {
		_, _, err := e.txn(&pb.TxnRequest{Success: tc.ops})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v want %v", tc.name, err, tc.want)
		}
	}
	if e.store.Rev() != 3 {
		t.Fatalf("failed txns wrote: rev %d", e.store.Rev())
	}
	// at the compaction revision is fine; an unknown lease on the other branch is not checked
	resp, _, err := e.txn(&pb.TxnRequest{
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: 2}}}},
		Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("y"), Lease: 99}}}},
	})
	if err != nil || string(resp.Responses[0].GetResponseRange().Kvs[0].Value) != "1" {
		t.Fatalf("range at compact rev: %v %v", resp, err)
	}
}

func TestTxnReadOnly(t *testing.T) {
	e := newEnv(t)
	e.mustPut("a", "1")
	e.mustPut("b", "2")
	r := &pb.TxnRequest{
		Compare: []*pb.Compare{cmp("a", pb.Compare_VALUE, pb.Compare_EQUAL, "1")},
		Success: []*pb.RequestOp{opGet("a", "\x00"), opGet("b", "")},
		Failure: []*pb.RequestOp{opGet("zz", "")},
	}
	if !IsTxnReadOnly(r) || IsTxnSerializable(r) {
		t.Fatal("classification")
	}
	resp, err := e.ex.TxnReadOnly(bg, r)
	if err != nil || !resp.Succeeded || resp.Header.Revision != 3 || keys(resp.Responses[0].GetResponseRange().Kvs) != "a,b" {
		t.Fatalf("%v %v", resp, err)
	}
	// same answer through the write path, and no revision bump
	wresp, _, err := e.txn(r)
	if err != nil || wresp.Header.Revision != 3 || e.store.Rev() != 3 {
		t.Fatalf("%v %v", wresp, err)
	}
	if _, err := e.ex.TxnReadOnly(bg, &pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "1")}}); err == nil {
		t.Fatal("TxnReadOnly accepted a write")
	}
	r.Success[0].GetRequestRange().Serializable = true
	r.Success[1].GetRequestRange().Serializable = true
	r.Failure[0].GetRequestRange().Serializable = true
	if !IsTxnSerializable(r) {
		t.Fatal("serializable")
	}
	if IsTxnReadOnly(&pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{})}}) {
		t.Fatal("nested txn is not read-only in etcd")
	}
}

func TestExecutorDeterministic(t *testing.T) {
	run := func() string {
		e := newEnv(t)
		var out bytes.Buffer
		for i := 0; i < 30; i++ {
			k := fmt.Sprintf("k%d", i%7)
			resp, evs, err := e.txn(&pb.TxnRequest{
				Compare: []*pb.Compare{cmp(k, pb.Compare_VERSION, pb.Compare_LESS, 3)},
				Success: []*pb.RequestOp{opPut(k, fmt.Sprint(i)), opGet("k", "l")},
				Failure: []*pb.RequestOp{opDel(k, "")},
			})
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&out, "%v|%d\n", resp, len(evs))
		}
		h, err := e.store.HashByRev(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(&out, h)
		return out.String()
	}
	if a, b := run(), run(); a != b {
		t.Fatal("two runs of the same log differ")
	}
}

func TestSortTiesMatchSortSort(t *testing.T) {
	// ties keep the order sort.Sort gives, like etcd's sorters
	kvs := []*mvccpb.KeyValue{{Key: []byte("a"), Version: 1}, {Key: []byte("b"), Version: 1}, {Key: []byte("c"), Version: 2}}
	want := append([]*mvccpb.KeyValue(nil), kvs...)
	sort.Sort(sort.Reverse(kvSorter{kvs: want, less: func(a, b *mvccpb.KeyValue) bool { return a.Version-b.Version < 0 }}))
	sortKVs(kvs, &pb.RangeRequest{SortTarget: pb.RangeRequest_VERSION, SortOrder: pb.RangeRequest_DESCEND})
	if keys(kvs) != keys(want) {
		t.Fatal(keys(kvs), keys(want))
	}
}
