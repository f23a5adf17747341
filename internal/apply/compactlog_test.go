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
	log, a := openLogApplier(t, eng, Config{SnapshotCount: 10, CatchupEntries: 5})
	for i := uint64(1); i <= 35; i++ {
		saveApply(t, log, a, putEntry(t, i, 1))
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

// With CatchupBytes the log is also cut once that many bytes were applied
// since the last cut, and a cut keeps the newest entries that fit in it (at
// least one), however far the count is: large entries no longer pile up
// to SnapshotCount + CatchupEntries of them. After a restart, whose older
// entries' sizes are unknown, the first cut keeps CatchupEntries, as the
// count alone would.
func TestRaftLogCutByBytes(t *testing.T) {
	eng := memory.New()
	cfg := Config{SnapshotCount: 1000, CatchupEntries: 500, CatchupBytes: 5000}
	log, a := openLogApplier(t, eng, cfg)
	size := uint64(len(putEntry(t, 1, 1000).Data))
	perCut := cfg.CatchupBytes / size // entries that fit in the budget
	for i := uint64(1); i <= 40; i++ {
		saveApply(t, log, a, putEntry(t, i, 1000))
		fi, _ := log.FirstIndex()
		li, _ := log.LastIndex()
		if fi > a.AppliedIndex()+1 {
			t.Fatalf("applied %d but the log starts at %d", a.AppliedIndex(), fi)
		}
		if held := li - fi + 1; held*size > 2*cfg.CatchupBytes+size {
			t.Fatalf("after %d applied the log holds %d entries of %d bytes, above twice the budget of %d", i, held, size, cfg.CatchupBytes)
		}
		// perCut+1 entries exceed the budget: every perCut+1 entries a cut
		// keeps the perCut newest.
		if i == 2*(perCut+1) && li-fi+1 != perCut {
			t.Fatalf("right after the second cut (%d applied): entries %d-%d held, want the %d newest, which fit the budget", i, fi, li, perCut)
		}
	}
	// One entry above the budget: the cut keeps it alone.
	saveApply(t, log, a, putEntry(t, 41, 2*int(cfg.CatchupBytes)))
	if fi, _ := log.FirstIndex(); fi != 41 {
		t.Fatalf("after an entry above the budget the log starts at %d, want 41 (that entry alone)", fi)
	}
	for i := uint64(42); i <= 44; i++ {
		saveApply(t, log, a, putEntry(t, i, 1000))
	}
	// A restart: the sizes of entries 41-44 are unknown. The newest entries
	// fill the budget before reaching them, so they are cut all the same.
	_ = a.cfg.Store.Close()
	log, a = openLogApplier(t, eng, cfg)
	for i := uint64(45); i <= 45+perCut; i++ {
		saveApply(t, log, a, putEntry(t, i, 1000))
	}
	fi, _ := log.FirstIndex()
	li, _ := log.LastIndex()
	if fi != 46 || li != 45+perCut {
		t.Fatalf("after a restart and a cut by bytes: entries %d-%d held, want 46-%d", fi, li, 45+perCut)
	}
}

// With CatchupBytes above what the entries add up to, the count decides as
// without it, across a restart too, where the sizes of the entries the log
// holds are unknown (a cut by count then keeps CatchupEntries of them).
func TestRaftLogCutByCountWithByteBound(t *testing.T) {
	eng := memory.New()
	cfg := Config{SnapshotCount: 4, CatchupEntries: 6, CatchupBytes: 1 << 40}
	log, a := openLogApplier(t, eng, cfg)
	for i := uint64(1); i <= 22; i++ {
		saveApply(t, log, a, putEntry(t, i, 1))
	}
	if fi, _ := log.FirstIndex(); fi != 15 {
		t.Fatalf("after 22 applied: first index %d, want 15 (cut at 20, keeping 6)", fi)
	}
	_ = a.cfg.Store.Close()
	log, a = openLogApplier(t, eng, cfg)
	for i := uint64(23); i <= 26; i++ {
		saveApply(t, log, a, putEntry(t, i, 1))
	}
	// Only 23-26 have known sizes; the cut keeps 6 all the same.
	if fi, _ := log.FirstIndex(); fi != 21 {
		t.Fatalf("after a restart and 4 more: first index %d, want 21", fi)
	}
}

func openLogApplier(t *testing.T, eng *memory.Engine, cfg Config) (*raftlog.Storage, *Applier) {
	t.Helper()
	log, err := raftlog.Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	store := mvcctest.Open(t, eng, nil)
	members, err := membership.Load(eng)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Engine, cfg.Store, cfg.Executor, cfg.RaftLog, cfg.Members, cfg.Wait = eng, store, txn.New(store, nil, nil), log, members, NewWait()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return log, a
}

// putEntry is entry i: a put of a value of n bytes.
func putEntry(t *testing.T, i uint64, n int) *raftpb.Entry {
	t.Helper()
	data, err := proto.Marshal(&pb.InternalRaftRequest{ID: i, Put: &pb.PutRequest{Key: []byte("k"), Value: make([]byte, n)}})
	if err != nil {
		t.Fatal(err)
	}
	return &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(1), Type: raftpb.EntryType_EntryNormal.Enum(), Data: data}
}

func saveApply(t *testing.T, log *raftlog.Storage, a *Applier, e *raftpb.Entry) {
	t.Helper()
	if err := log.Save(&raftpb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(e.GetIndex())}, []*raftpb.Entry{e}, false); err != nil {
		t.Fatal(err)
	}
	if err := a.ApplyEntries([]*raftpb.Entry{e}); err != nil {
		t.Fatal(err)
	}
}
