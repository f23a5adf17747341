package apply

import (
	"errors"
	"testing"

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
