package apply

import (
	"bytes"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/clock"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

// proposedEntry makes the entry for req with ID id and registers its waiter
// the way the backend does for a KV request: with req and the entry's bytes
// when kept, with neither otherwise (a member that did not propose it gets
// no waiter at all, see TestApplyProposedFallsBackToDecode).
func (r *leaseRig) proposedEntry(t testing.TB, req *pb.InternalRaftRequest, kept bool) (*raftpb.Entry, <-chan Result) {
	t.Helper()
	r.nextID++
	req.Header = &pb.RequestHeader{ID: r.nextID}
	data, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	r.index++
	e := &raftpb.Entry{Index: proto.Uint64(r.index), Term: proto.Uint64(1), Type: raftpb.EntryType_EntryNormal.Enum(), Data: data}
	if !kept {
		return e, r.wait.Register(r.nextID)
	}
	// The entry's bytes are a copy, as on a member that re-read its log:
	// the applier must compare contents, not identities.
	return e, r.wait.RegisterProposal(r.nextID, req, bytes.Clone(data), nil)
}

// mixedRequests covers what the KV service proposes: puts (with a lease,
// prev_kv, ignore_value), deletes, txns that succeed and fail, and requests
// the applier refuses (an unknown lease, ignore_value on a missing key).
func mixedRequests(lease int64) []*pb.InternalRaftRequest {
	put := func(k, v string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v), PrevKv: true}}}
	}
	var out []*pb.InternalRaftRequest
	for i := range 20 {
		k := fmt.Sprintf("k%02d", i%7)
		switch i % 5 {
		case 0:
			out = append(out, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), Value: []byte(fmt.Sprint("v", i)), Lease: lease, PrevKv: true}})
		case 1:
			out = append(out, &pb.InternalRaftRequest{Txn: &pb.TxnRequest{
				Compare: []*pb.Compare{{Key: []byte(k), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: 0}}},
				Success: []*pb.RequestOp{put(k, fmt.Sprint("created", i))},
				Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k)}}}},
			}})
		case 2:
			out = append(out, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), IgnoreValue: true, PrevKv: true}})
		case 3:
			out = append(out, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("k0"), RangeEnd: []byte("k04"), PrevKv: true}})
		case 4:
			out = append(out, &pb.InternalRaftRequest{Txn: &pb.TxnRequest{
				Compare: []*pb.Compare{{Key: []byte(k), Target: pb.Compare_VALUE, Result: pb.Compare_NOT_EQUAL, TargetUnion: &pb.Compare_Value{Value: []byte("x")}}},
				Success: []*pb.RequestOp{put(k+"/a", "1"), {Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("k06")}}}},
			}})
		}
	}
	out = append(out, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("nolease"), Value: []byte("v"), Lease: lease + 1}})
	return out
}

// applyMixed grants a lease, then applies mixedRequests in batches of 3,
// every request's waiter kept or not as kept says, and returns the results.
func applyMixed(t *testing.T, kept bool) (*leaseRig, []Result) {
	t.Helper()
	r := newLeaseRig(t, memory.New(), clock.NewFake())
	if res := r.apply1(t, grantReq(7, 100)); res.Err != nil {
		t.Fatal(res.Err)
	}
	reqs := mixedRequests(7)
	var out []Result
	for i := 0; i < len(reqs); i += 3 {
		var ents []*raftpb.Entry
		var chs []<-chan Result
		for _, q := range reqs[i:min(i+3, len(reqs))] {
			e, ch := r.proposedEntry(t, q, kept)
			ents = append(ents, e)
			chs = append(chs, ch)
		}
		if err := r.a.ApplyEntries(ents); err != nil {
			t.Fatal(err)
		}
		for _, ch := range chs {
			out = append(out, <-ch)
		}
	}
	return r, out
}

func engineContents(t *testing.T, e storage.Reader) [][2][]byte {
	t.Helper()
	it, err := e.NewIter(storage.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out [][2][]byte
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, [2][]byte{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestApplyProposedSameAsDecoded applies the same entries on two members,
// one applying the proposer's requests, the other decoding every entry:
// results and the whole engine state must be the same.
func TestApplyProposedSameAsDecoded(t *testing.T) {
	kept, keptRes := applyMixed(t, true)
	decoded, decRes := applyMixed(t, false)
	if len(keptRes) != len(decRes) {
		t.Fatalf("%d results kept, %d decoded", len(keptRes), len(decRes))
	}
	var failed int
	for i := range keptRes {
		k, d := keptRes[i], decRes[i]
		if fmt.Sprint(k.Err) != fmt.Sprint(d.Err) {
			t.Errorf("request %d: error %v kept, %v decoded", i, k.Err, d.Err)
		}
		if k.Err != nil {
			failed++
			continue
		}
		km, _ := k.Resp.(proto.Message)
		dm, _ := d.Resp.(proto.Message)
		if km == nil || !proto.Equal(km, dm) {
			t.Errorf("request %d: response %v kept, %v decoded", i, k.Resp, d.Resp)
		}
	}
	if failed == 0 || failed == len(keptRes) {
		t.Fatalf("%d of %d requests failed: the mix must cover both", failed, len(keptRes))
	}
	ks, ds := engineContents(t, kept.eng), engineContents(t, decoded.eng)
	if len(ks) != len(ds) {
		t.Fatalf("%d engine keys kept, %d decoded", len(ks), len(ds))
	}
	for i := range ks {
		if !bytes.Equal(ks[i][0], ds[i][0]) || !bytes.Equal(ks[i][1], ds[i][1]) {
			t.Fatalf("engine key %d: %q=%x kept, %q=%x decoded", i, ks[i][0], ks[i][1], ds[i][0], ds[i][1])
		}
	}
	if a, b := kept.keys(t, 7), decoded.keys(t, 7); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("lease keys %v kept, %v decoded", a, b)
	}
}

// TestApplyProposedFallsBackToDecode registers, under an entry's ID, a
// request that differs from what the entry carries, so the value stored
// shows which one was applied: the registered request only when its bytes
// are exactly the entry's, the entry's own in every other case.
func TestApplyProposedFallsBackToDecode(t *testing.T) {
	const id = 42
	entryReq := func() *pb.InternalRaftRequest {
		return &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: id}, Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("from-entry")}}
	}
	registered := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: id}, Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("from-proposer")}}
	entryData, err := proto.Marshal(entryReq())
	if err != nil {
		t.Fatal(err)
	}
	other, err := proto.Marshal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: id}, Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("something else")}})
	if err != nil {
		t.Fatal(err)
	}
	// The registered bytes differ from the entry's only in the last byte.
	lastByte := bytes.Clone(entryData)
	lastByte[len(lastByte)-1]++
	for _, tc := range []struct {
		name     string
		register func(w *Wait) <-chan Result
		want     string
	}{
		// Bytes equal: the proposer's request is applied. (A real proposer
		// registers the request its bytes encode; this one does not, only to
		// make the path visible.)
		{"same bytes", func(w *Wait) <-chan Result { return w.RegisterProposal(id, registered, bytes.Clone(entryData), nil) }, "from-proposer"},
		{"same ID, other bytes", func(w *Wait) <-chan Result { return w.RegisterProposal(id, registered, other, nil) }, "from-entry"},
		{"same ID, last byte differs", func(w *Wait) <-chan Result { return w.RegisterProposal(id, registered, lastByte, nil) }, "from-entry"},
		{"same ID, prefix of the bytes", func(w *Wait) <-chan Result {
			return w.RegisterProposal(id, registered, entryData[:len(entryData)-1], nil)
		}, "from-entry"},
		{"waiter without request", func(w *Wait) <-chan Result { return w.Register(id) }, "from-entry"},
		{"no waiter (follower, replay)", func(*Wait) <-chan Result { return nil }, "from-entry"},
		{"waiter gave up", func(w *Wait) <-chan Result {
			w.RegisterProposal(id, registered, bytes.Clone(entryData), nil)
			w.Cancel(id)
			return nil
		}, "from-entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newLeaseRig(t, memory.New(), clock.NewFake())
			ch := tc.register(r.wait)
			e := &raftpb.Entry{Index: proto.Uint64(r.index + 1), Term: proto.Uint64(1), Type: raftpb.EntryType_EntryNormal.Enum(), Data: entryData}
			if err := r.a.ApplyEntries([]*raftpb.Entry{e}); err != nil {
				t.Fatal(err)
			}
			if ch != nil {
				if res := <-ch; res.Err != nil {
					t.Fatal(res.Err)
				}
			}
			if kv := r.get(t, "k"); kv == nil || string(kv.Value) != tc.want {
				t.Fatalf("k = %v, want value %q", kv, tc.want)
			}
		})
	}
}

// TestEntryID reads the ID the applier would pick from a decoded request.
func TestEntryID(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  *pb.InternalRaftRequest
		want uint64
	}{
		{"header", &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 1 << 60, Username: "u"}, Put: &pb.PutRequest{Key: []byte("k")}}, 1 << 60},
		{"own ID", &pb.InternalRaftRequest{ID: 9, Put: &pb.PutRequest{Key: []byte("k")}}, 9},
		{"header wins", &pb.InternalRaftRequest{ID: 9, Header: &pb.RequestHeader{ID: 10}}, 10},
		{"header without ID", &pb.InternalRaftRequest{ID: 9, Header: &pb.RequestHeader{Username: "u"}}, 9},
		{"none", &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k")}}, 0},
	} {
		data, err := proto.Marshal(tc.req)
		if err != nil {
			t.Fatal(err)
		}
		var dec pb.InternalRaftRequest
		if err := proto.Unmarshal(data, &dec); err != nil {
			t.Fatal(err)
		}
		picked := dec.GetID()
		if h := dec.GetHeader(); h.GetID() != 0 {
			picked = h.GetID()
		}
		got, ok := entryID(data)
		if !ok || got != tc.want || got != picked {
			t.Errorf("%s: entryID = %d, %v; want %d (the decoded request's %d)", tc.name, got, ok, tc.want, picked)
		}
	}
	// Two header fields merge: the later ID wins, as in a decoded request.
	a, _ := proto.Marshal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 1}})
	b, _ := proto.Marshal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 2}})
	var dec pb.InternalRaftRequest
	if err := proto.Unmarshal(append(a, b...), &dec); err != nil {
		t.Fatal(err)
	}
	if got, ok := entryID(append(a, b...)); !ok || got != dec.GetHeader().GetID() {
		t.Errorf("merged headers: entryID = %d, %v; decoded %d", got, ok, dec.GetHeader().GetID())
	}
	for _, bad := range [][]byte{{0xff}, {0x0a, 0x05, 0x01}, {0xa2, 0x06, 0x03, 0x08}} {
		if _, ok := entryID(bad); ok {
			t.Errorf("entryID(%x) ok, want malformed", bad)
		}
	}
}
