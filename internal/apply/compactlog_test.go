package apply

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/mvcc/mvcctest"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage/memory"
	"github.com/metastore/metastore/internal/txn"
)

// The applier cuts the raft log back to CatchupEntries behind the applied
// index every SnapshotCount entries, and never past what it applied.
func TestRaftLogCompactedEverySnapshotCount(t *testing.T) {
	eng := memory.New()
	log, err := raftlog.Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	store := mvcctest.Open(t, eng, nil)
	members, err := membership.Load(eng)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Engine: eng, Store: store, Executor: txn.New(store, nil, nil), RaftLog: log, Members: members,
		Wait: NewWait(), SnapshotCount: 10, CatchupEntries: 5})
	if err != nil {
		t.Fatal(err)
	}
	put := func(i uint64) *raftpb.Entry {
		data, err := proto.Marshal(&pb.InternalRaftRequest{ID: i, Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}})
		if err != nil {
			t.Fatal(err)
		}
		return &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(1), Type: raftpb.EntryType_EntryNormal.Enum(), Data: data}
	}
	for i := uint64(1); i <= 35; i++ {
		e := put(i)
		if err := log.Save(&raftpb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(i)}, []*raftpb.Entry{e}, false); err != nil {
			t.Fatal(err)
		}
		if err := a.ApplyEntries([]*raftpb.Entry{e}); err != nil {
			t.Fatal(err)
		}
		fi, _ := log.FirstIndex()
		if fi > a.AppliedIndex()+1 {
			t.Fatalf("applied %d but the log starts at %d", a.AppliedIndex(), fi)
		}
		switch i {
		case 9:
			if fi != 1 {
				t.Fatalf("compacted before SnapshotCount entries: first index %d", fi)
			}
		case 10, 19:
			if fi != 6 {
				t.Fatalf("after %d applied: first index %d, want 6", i, fi)
			}
		case 20:
			if fi != 16 {
				t.Fatalf("after 20 applied: first index %d, want 16", fi)
			}
		}
	}
	// The compaction survives a restart.
	reopened, err := raftlog.Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := reopened.FirstIndex(); fi != 26 {
		t.Fatalf("after reopen: first index %d, want 26", fi)
	}
}
