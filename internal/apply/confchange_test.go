package apply

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/mvcc/mvcctest"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage/memory"
	"github.com/metastore/metastore/internal/txn"
)

type fakeConf struct{ got []uint64 }

func (f *fakeConf) ApplyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState {
	v2 := cc.AsV2()
	for _, ch := range v2.Changes {
		f.got = append(f.got, ch.GetNodeId())
	}
	return &raftpb.ConfState{Voters: []uint64{1}}
}

type fakeObserver struct{ added, removed []uint64 }

func (o *fakeObserver) MemberAdded(m *membership.Member)   { o.added = append(o.added, m.ID) }
func (o *fakeObserver) MemberUpdated(m *membership.Member) {}
func (o *fakeObserver) MemberRemoved(id uint64)            { o.removed = append(o.removed, id) }

// A conf change the members refuse reaches raft as a change of node 0 (a
// no-op) and its proposer gets the error; an accepted one is persisted and
// observed. Two changes in one batch are validated one after the other.
func TestConfChangeValidatedAtApply(t *testing.T) {
	eng := memory.New()
	log, _ := raftlog.Open(eng)
	store := mvcctest.Open(t, eng, nil)
	members, _ := membership.Load(eng)
	conf, obs, wait := &fakeConf{}, &fakeObserver{}, NewWait()
	a, err := New(Config{Engine: eng, Store: store, Executor: txn.New(store, nil, nil), RaftLog: log, Members: members,
		Conf: conf, Observer: obs, Wait: wait})
	if err != nil {
		t.Fatal(err)
	}
	entry := func(i uint64, cc *raftpb.ConfChange) *raftpb.Entry {
		data, err := proto.Marshal(cc)
		if err != nil {
			t.Fatal(err)
		}
		return &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(1), Type: raftpb.EntryType_EntryConfChange.Enum(), Data: data}
	}
	m := membership.Member{ID: 7, PeerURLs: []string{"http://x:1"}}
	add := &raftpb.ConfChange{Id: proto.Uint64(100), Type: raftpb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: proto.Uint64(7),
		Context: (&membership.ConfChangeContext{Member: m}).Encode()}
	dup := proto.Clone(add).(*raftpb.ConfChange)
	dup.Id = proto.Uint64(101)
	remove := &raftpb.ConfChange{Id: proto.Uint64(102), Type: raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(7)}
	chAdd, chDup, chRemove := wait.Register(100), wait.Register(101), wait.Register(102)
	if err := a.ApplyEntries([]*raftpb.Entry{entry(1, add), entry(2, dup), entry(3, remove)}); err != nil {
		t.Fatal(err)
	}
	if r := <-chAdd; r.Err != nil {
		t.Fatalf("add: %v", r.Err)
	}
	if r := <-chDup; !errors.Is(r.Err, membership.ErrIDExists) {
		t.Fatalf("second add of the same ID: %v, want ErrIDExists", r.Err)
	}
	if r := <-chRemove; r.Err != nil {
		t.Fatalf("remove after add in the same batch: %v", r.Err)
	}
	if len(conf.got) != 3 || conf.got[0] != 7 || conf.got[1] != 0 || conf.got[2] != 7 {
		t.Fatalf("raft saw node IDs %v, want [7 0 7]", conf.got)
	}
	if len(obs.added) != 1 || len(obs.removed) != 1 {
		t.Fatalf("observer: added %v removed %v", obs.added, obs.removed)
	}
	reloaded, _ := membership.Load(eng)
	if reloaded.Member(7) != nil || !reloaded.IsRemoved(7) {
		t.Fatal("the removal was not persisted")
	}
}

// A member replaying the log applies many entries in one batch; the
// members that applied them live did so in many. Both must end with the
// same member list and the same changes reaching raft: a publish of a
// member followed by its removal (and a publish of the removed member,
// which is ignored) must not bring it back, nor a publish followed by a
// promotion turn the member back into a learner.
func TestMemberAttrsBatchedLikeUnbatched(t *testing.T) {
	entry := func(i uint64, r *pb.InternalRaftRequest, cc *raftpb.ConfChange) *raftpb.Entry {
		e := &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(1), Type: raftpb.EntryType_EntryNormal.Enum()}
		var err error
		if cc != nil {
			e.Type = raftpb.EntryType_EntryConfChange.Enum()
			e.Data, err = proto.Marshal(cc)
		} else {
			e.Data, err = proto.Marshal(r)
		}
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	add := func(id uint64, url string, learner bool) *raftpb.ConfChange {
		typ := raftpb.ConfChangeType_ConfChangeAddNode
		if learner {
			typ = raftpb.ConfChangeType_ConfChangeAddLearnerNode
		}
		m := membership.Member{ID: id, PeerURLs: []string{url}}
		return &raftpb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(id), Context: (&membership.ConfChangeContext{Member: m}).Encode()}
	}
	publish := func(id uint64, name string) *pb.InternalRaftRequest {
		return &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
			Member_ID: id, MemberAttributes: &membershippb.Attributes{Name: name, ClientUrls: []string{"http://c:" + name}}}}
	}
	ents := []*raftpb.Entry{
		entry(1, nil, add(1, "http://a:1", false)),
		entry(2, nil, add(3, "http://c:1", false)),
		entry(3, publish(3, "c"), nil),
		entry(4, nil, &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(3)}),
		entry(5, publish(3, "c-again"), nil),
		// The removed member's peer URL under a new ID: accepted only if
		// member 3 is really gone.
		entry(6, nil, add(5, "http://c:1", false)),
		entry(7, nil, add(4, "http://d:1", true)),
		entry(8, publish(4, "d"), nil),
		entry(9, nil, &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: proto.Uint64(4),
			Context: (&membership.ConfChangeContext{Member: membership.Member{ID: 4}, IsPromote: true}).Encode()}),
		// Accepted only if member 4 is no longer counted as a learner
		// (--max-learners is 1).
		entry(10, nil, add(6, "http://e:1", true)),
	}
	run := func(batches [][]*raftpb.Entry) (mem, disk []*membership.Member, raftSaw []uint64) {
		eng := memory.New()
		log, _ := raftlog.Open(eng)
		store := mvcctest.Open(t, eng, nil)
		members, _ := membership.Load(eng)
		conf := &fakeConf{}
		a, err := New(Config{Engine: eng, Store: store, Executor: txn.New(store, nil, nil), RaftLog: log, Members: members,
			Conf: conf, Wait: NewWait()})
		if err != nil {
			t.Fatal(err)
		}
		applyInBatches(t, a, batches)
		reloaded, err := membership.Load(eng)
		if err != nil {
			t.Fatal(err)
		}
		return members.Members(), reloaded.Members(), conf.got
	}
	liveMem, liveDisk, liveRaft := run(oneEntryPerBatch(ents))
	replayMem, replayDisk, replayRaft := run([][]*raftpb.Entry{ents})
	want := []uint64{1, 3, 3, 5, 4, 4, 6}
	for name, got := range map[string][]uint64{"one entry per batch": liveRaft, "one batch": replayRaft} {
		if !slices.Equal(got, want) {
			t.Errorf("%s: raft saw node IDs %v, want %v", name, got, want)
		}
	}
	for name, got := range map[string][]*membership.Member{"live, in memory": liveMem, "live, on disk": liveDisk,
		"replay, in memory": replayMem, "replay, on disk": replayDisk} {
		if s := fmt.Sprint(describeMembers(got)); s != "[1: 4:d 5: 6:(learner)]" {
			t.Errorf("%s: members %s, want [1: 4:d 5: 6:(learner)]", name, s)
		}
	}
}

func describeMembers(ms []*membership.Member) []string {
	var out []string
	for _, m := range ms {
		s := fmt.Sprintf("%d:%s", m.ID, m.Name)
		if m.IsLearner {
			s += "(learner)"
		}
		out = append(out, s)
	}
	return out
}

// applyInBatches applies each batch with one ApplyEntries, as raft hands
// the committed entries of one Ready over.
func applyInBatches(t *testing.T, a *Applier, batches [][]*raftpb.Entry) {
	t.Helper()
	for _, b := range batches {
		if err := a.ApplyEntries(b); err != nil {
			t.Fatal(err)
		}
	}
}

// oneEntryPerBatch is how a member applying entries live, as they commit,
// may see them: one Ready each.
func oneEntryPerBatch(ents []*raftpb.Entry) [][]*raftpb.Entry {
	out := make([][]*raftpb.Entry, 0, len(ents))
	for _, e := range ents {
		out = append(out, []*raftpb.Entry{e})
	}
	return out
}
