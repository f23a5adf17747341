package apply

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/clock"
	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/mvcc/mvcctest"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
	"github.com/metastore/metastore/internal/txn"
)

// leaseRig is an applier on the memory engine with the real mvcc store,
// executor and lessor; entries are fed by hand.
type leaseRig struct {
	eng    storage.Engine
	clock  *clock.Fake
	store  *mvcc.Store
	lessor *lease.Lessor
	a      *Applier
	wait   *Wait
	index  uint64
	nextID uint64
	// kept registers each entry's request with its waiter, as the backend
	// does for the KV service's requests (Wait.RegisterProposal).
	kept   bool
	mu     sync.Mutex
	commit [][]*mvccpb.Event // one element per committed write txn
}

func newLeaseRig(t testing.TB, eng storage.Engine, clock *clock.Fake) *leaseRig {
	t.Helper()
	store := mvcctest.Open(t, eng, nil)
	le, err := lease.New(lease.Config{Engine: eng, ElectionTimeout: time.Second, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	r := &leaseRig{eng: eng, clock: clock, store: store, lessor: le, wait: NewWait()}
	store.OnCommit(func(_ int64, evs []*mvccpb.Event) {
		r.mu.Lock()
		r.commit = append(r.commit, evs)
		r.mu.Unlock()
	})
	r.a, err = New(Config{
		Engine:   eng,
		Store:    store,
		Executor: txn.New(store, le, nil),
		Lessor:   le,
		Wait:     r.wait,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.index = r.a.AppliedIndex()
	return r
}

func (r *leaseRig) entry(req *pb.InternalRaftRequest) (*raftpb.Entry, <-chan Result) {
	r.nextID++
	req.Header = &pb.RequestHeader{ID: r.nextID}
	data, err := proto.Marshal(req)
	if err != nil {
		panic(err)
	}
	r.index++
	e := &raftpb.Entry{Index: proto.Uint64(r.index), Term: proto.Uint64(1), Type: raftpb.EntryType_EntryNormal.Enum(), Data: data}
	if r.kept {
		return e, r.wait.RegisterProposal(r.nextID, req, data, nil)
	}
	return e, r.wait.Register(r.nextID)
}

// applyAll applies reqs as one batch and returns their results.
func (r *leaseRig) applyAll(t testing.TB, reqs ...*pb.InternalRaftRequest) []Result {
	t.Helper()
	var ents []*raftpb.Entry
	var chs []<-chan Result
	for _, q := range reqs {
		e, ch := r.entry(q)
		ents = append(ents, e)
		chs = append(chs, ch)
	}
	if err := r.a.ApplyEntries(ents); err != nil {
		t.Fatal(err)
	}
	out := make([]Result, len(chs))
	for i, ch := range chs {
		out[i] = <-ch
	}
	return out
}

func (r *leaseRig) apply1(t testing.TB, req *pb.InternalRaftRequest) Result {
	t.Helper()
	return r.applyAll(t, req)[0]
}

func grantReq(id, ttl int64) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: id, TTL: ttl}}
}

func revokeReq(id int64) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}}
}

func putReq(key string, lease int64) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(key), Value: []byte("v"), Lease: lease}}
}

func (r *leaseRig) get(t testing.TB, key string) *mvccpb.KeyValue {
	t.Helper()
	res, err := r.store.Range(context.Background(), []byte(key), nil, mvcc.RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.KVs) == 0 {
		return nil
	}
	return res.KVs[0]
}

func (r *leaseRig) keys(t testing.TB, id int64) []string {
	t.Helper()
	ks, err := r.lessor.Keys(id)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

func TestApplyLeaseGrant(t *testing.T) {
	r := newLeaseRig(t, memory.New(), clock.NewFake())
	res := r.apply1(t, grantReq(5, 1))
	resp, ok := res.Resp.(*pb.LeaseGrantResponse)
	if res.Err != nil || !ok || resp.ID != 5 || resp.TTL != 2 {
		t.Fatalf("grant: %+v %v", res.Resp, res.Err)
	}
	for _, c := range []struct {
		req  *pb.InternalRaftRequest
		want error
	}{
		{grantReq(5, 10), lease.ErrLeaseExists},
		{grantReq(6, lease.MaxTTL+1), lease.ErrLeaseTTLTooLarge},
		{revokeReq(99), lease.ErrLeaseNotFound},
		{putReq("k", 99), txn.ErrLeaseNotFound},
	} {
		if res := r.apply1(t, c.req); !errors.Is(res.Err, c.want) {
			t.Errorf("%v: %v, want %v", c.req, res.Err, c.want)
		}
	}
}

func TestApplyAttachDetachRevoke(t *testing.T) {
	eng := memory.New()
	r := newLeaseRig(t, eng, clock.NewFake())
	r.apply1(t, grantReq(1, 60))
	r.apply1(t, grantReq(2, 60))
	r.applyAll(t, putReq("a", 1), putReq("b", 1), putReq("c\x00\xff", 1), putReq("d", 2), putReq("plain", 0))
	if kv := r.get(t, "a"); kv == nil || kv.Lease != 1 {
		t.Fatalf("a = %v", kv)
	}
	// Detach: a put without lease, a put moving to another lease, a delete.
	r.apply1(t, putReq("b", 0))
	r.apply1(t, putReq("d", 1))
	r.apply1(t, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}})
	if got := fmt.Sprint(r.keys(t, 1)); got != fmt.Sprint([]string{"c\x00\xff", "d"}) {
		t.Fatalf("keys of lease 1 = %q", got)
	}
	if got := r.keys(t, 2); len(got) != 0 {
		t.Fatalf("keys of lease 2 = %q", got)
	}

	// Revoke: every attached key goes at one revision, in one commit.
	before := r.store.Rev()
	r.mu.Lock()
	r.commit = nil
	r.mu.Unlock()
	res := r.apply1(t, revokeReq(1))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if rev := r.store.Rev(); rev != before+1 || res.Resp.(*pb.LeaseRevokeResponse).Header.Revision != rev {
		t.Fatalf("revision %d -> %d, header %v", before, rev, res.Resp)
	}
	if len(r.commit) != 1 || len(r.commit[0]) != 2 {
		t.Fatalf("revoke committed %d txns (%v), want one with 2 deletes", len(r.commit), r.commit)
	}
	for _, k := range []string{"c\x00\xff", "d"} {
		if r.get(t, k) != nil {
			t.Fatalf("%q survived the revoke", k)
		}
	}
	if r.get(t, "b") == nil || r.get(t, "plain") == nil {
		t.Fatal("a detached or unleased key was deleted")
	}
	if r.lessor.Exists(1) {
		t.Fatal("revoked lease still exists")
	}

	// A lease without keys: revoking it does not change the revision.
	before = r.store.Rev()
	if res := r.apply1(t, revokeReq(2)); res.Err != nil || r.store.Rev() != before {
		t.Fatalf("revoke of a keyless lease: %v, rev %d -> %d", res.Err, before, r.store.Rev())
	}
}

func TestApplyGrantPutRevokeInOneBatch(t *testing.T) {
	r := newLeaseRig(t, memory.New(), clock.NewFake())
	res := r.applyAll(t, grantReq(1, 60), putReq("x", 1), putReq("y", 1), revokeReq(1), putReq("z", 1))
	for i, rr := range res[:4] {
		if rr.Err != nil {
			t.Fatalf("request %d: %v", i, rr.Err)
		}
	}
	if !errors.Is(res[4].Err, txn.ErrLeaseNotFound) {
		t.Fatalf("put on a lease revoked earlier in the batch: %v", res[4].Err)
	}
	if r.get(t, "x") != nil || r.get(t, "y") != nil {
		t.Fatal("keys attached in the same batch survived the revoke")
	}
}

func TestApplyLeasesSurviveReopen(t *testing.T) {
	eng := memory.New()
	clock := clock.NewFake()
	r := newLeaseRig(t, eng, clock)
	r.apply1(t, grantReq(1, 600))
	r.applyAll(t, putReq("a", 1), putReq("b", 1))
	r.lessor.Promote(0)
	clock.Advance(100 * time.Second)
	r.apply1(t, &pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{
		Checkpoints: []*pb.LeaseCheckpoint{{ID: 1, Remaining_TTL: 500}},
	}})
	_ = r.store.Close()

	re := newLeaseRig(t, eng, clock)
	if re.a.AppliedIndex() != r.index {
		t.Fatalf("applied index %d, want %d", re.a.AppliedIndex(), r.index)
	}
	re.index = r.index
	re.nextID = r.nextID
	re.lessor.Promote(time.Second)
	st, ok := re.lessor.Lookup(1)
	if !ok || st.TTL() != 501 || st.GrantedTTL != 600 {
		t.Fatalf("after reopen: %+v (TTL %d)", st, st.TTL())
	}
	if got := fmt.Sprint(re.keys(t, 1)); got != "[a b]" {
		t.Fatalf("keys after reopen %s", got)
	}
	re.apply1(t, revokeReq(1))
	if re.get(t, "a") != nil || re.get(t, "b") != nil {
		t.Fatal("revoke after reopen left keys")
	}
}

// BenchmarkApplyLeaseGrant measures grants through the apply path, 64
// entries per batch as raft hands them out under load.
func BenchmarkApplyLeaseGrant(b *testing.B) {
	r := newLeaseRig(b, memory.New(), clock.NewFake())
	const perBatch = 64
	id := int64(0)
	b.ResetTimer()
	for i := 0; i < b.N; i += perBatch {
		reqs := make([]*pb.InternalRaftRequest, 0, perBatch)
		for j := 0; j < perBatch && i+j < b.N; j++ {
			id++
			reqs = append(reqs, grantReq(id, 60))
		}
		for _, res := range r.applyAll(b, reqs...) {
			if res.Err != nil {
				b.Fatal(res.Err)
			}
		}
	}
}
