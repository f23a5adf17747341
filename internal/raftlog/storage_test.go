package raftlog

import (
	"errors"
	"strings"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

func ent(index, term uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(term), Type: raftpb.EntryType_EntryNormal.Enum(), Data: []byte(data)}
}

func hs(term, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(1), Commit: proto.Uint64(commit)}
}

func mustOpen(t *testing.T, eng storage.Engine) *Storage {
	t.Helper()
	s, err := Open(eng)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestSaveAndReadBack(t *testing.T) {
	eng := memory.New()
	s := mustOpen(t, eng)
	if li, _ := s.LastIndex(); li != 0 {
		t.Fatalf("empty log LastIndex = %d", li)
	}
	if err := s.Save(hs(1, 2), []*raftpb.Entry{ent(1, 1, "a"), ent(2, 1, "b"), ent(3, 1, "c")}, true); err != nil {
		t.Fatal(err)
	}
	// Reopen: everything must come back from the engine, not the cache.
	s = mustOpen(t, eng)
	if li, _ := s.LastIndex(); li != 3 {
		t.Fatalf("LastIndex = %d, want 3", li)
	}
	if fi, _ := s.FirstIndex(); fi != 1 {
		t.Fatalf("FirstIndex = %d, want 1", fi)
	}
	got, err := s.Entries(1, 4, 1<<20)
	if err != nil || len(got) != 3 || string(got[2].Data) != "c" || got[1].GetIndex() != 2 {
		t.Fatalf("Entries = %v, %v", got, err)
	}
	h, _, _ := s.InitialState()
	if h.GetCommit() != 2 || h.GetTerm() != 1 {
		t.Fatalf("hard state = %v", h)
	}
	if _, err := s.Entries(2, 5, 1<<20); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Entries past last: %v, want ErrUnavailable", err)
	}
	one, _ := s.Entries(1, 4, 1)
	if len(one) != 1 {
		t.Fatalf("maxSize must still return one entry, got %d", len(one))
	}
}

func TestConflictingAppendTruncates(t *testing.T) {
	s := mustOpen(t, memory.New())
	if err := s.Save(hs(1, 0), []*raftpb.Entry{ent(1, 1, "a"), ent(2, 1, "b"), ent(3, 1, "c")}, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(hs(2, 0), []*raftpb.Entry{ent(2, 2, "B")}, false); err != nil {
		t.Fatal(err)
	}
	if li, _ := s.LastIndex(); li != 2 {
		t.Fatalf("LastIndex = %d, want 2 after truncation", li)
	}
	if tm, _ := s.Term(2); tm != 2 {
		t.Fatalf("Term(2) = %d, want 2", tm)
	}
	if err := s.Save(nil, []*raftpb.Entry{ent(5, 2, "gap")}, false); err == nil {
		t.Fatal("append leaving a gap must fail")
	}
}

func TestCompact(t *testing.T) {
	eng, s := tenEntries(t, 10)
	if err := s.Compact(6); err != nil {
		t.Fatal(err)
	}
	for _, st := range []*Storage{s, mustOpen(t, eng)} {
		if fi, _ := st.FirstIndex(); fi != 7 {
			t.Fatalf("FirstIndex = %d, want 7", fi)
		}
		if _, err := st.Entries(5, 8, 1<<20); !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("Entries below compaction: %v", err)
		}
		if tm, err := st.Term(6); err != nil || tm != 1 {
			t.Fatalf("Term at compaction point = %d, %v", tm, err)
		}
		if _, err := st.Term(5); !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("Term below compaction: %v", err)
		}
	}
}

func TestCorruptionDetectedAtOpen(t *testing.T) {
	eng := memory.New()
	s := mustOpen(t, eng)
	if err := s.Save(hs(1, 2), []*raftpb.Entry{ent(1, 1, "a"), ent(2, 1, "payload")}, true); err != nil {
		t.Fatal(err)
	}
	key := storage.RaftEntryKey(2)
	v, err := eng.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	v[len(v)-1] ^= 0x01 // one flipped bit in the payload
	b := eng.NewBatch()
	if err := b.Set(key, v); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	_, err = Open(eng)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open after bit flip: %v, want ErrCorrupt", err)
	}
	if want := "r/e/"; err != nil && !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the record", err)
	}
}

func TestConfStateStagedWithBatch(t *testing.T) {
	eng := memory.New()
	s := mustOpen(t, eng)
	cs := &raftpb.ConfState{Voters: []uint64{7}}
	b := eng.NewBatch()
	if err := StageConfState(b, cs); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	s.SetConfState(cs)
	_, got, _ := mustOpen(t, eng).InitialState()
	if len(got.Voters) != 1 || got.Voters[0] != 7 {
		t.Fatalf("conf state after reopen = %v", got)
	}
}

// Readers racing a compaction either see the old compaction point and read
// the entries, or the new one and get ErrCompacted: never a gap.
func TestCompactRacingReaders(t *testing.T) {
	s := mustOpen(t, memory.New())
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 6000; i++ {
		ents = append(ents, ent(i, 1, "x"))
	}
	if err := s.Save(hs(1, 6000), ents, true); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for idx := uint64(10); idx <= 5000; idx += 10 {
			if err := s.Compact(idx); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < 2000; i++ {
		fi, _ := s.FirstIndex()
		if _, err := s.Entries(fi, fi+8, 1<<20); err != nil && !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("Entries(%d) racing a compaction: %v", fi, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestInstallSnapshot(t *testing.T) {
	eng := memory.New()
	s := mustOpen(t, eng)
	if err := s.Save(hs(1, 3), []*raftpb.Entry{ent(1, 1, "a"), ent(2, 1, "b"), ent(3, 1, "c"), ent(4, 1, "d")}, true); err != nil {
		t.Fatal(err)
	}
	md := &raftpb.SnapshotMetadata{Index: proto.Uint64(100), Term: proto.Uint64(3), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}
	b := eng.NewBatch()
	if err := s.InstallSnapshot(b, md); err != nil {
		t.Fatal(err)
	}
	b.Close()
	for _, st := range []*Storage{s, mustOpen(t, eng)} {
		fi, _ := st.FirstIndex()
		li, _ := st.LastIndex()
		if fi != 101 || li != 100 {
			t.Fatalf("after install: first %d last %d, want 101 100", fi, li)
		}
		if tm, err := st.Term(100); err != nil || tm != 3 {
			t.Fatalf("Term(100) = %d, %v", tm, err)
		}
		h, cs, _ := st.InitialState()
		if h.GetCommit() != 100 || h.GetTerm() != 1 {
			t.Fatalf("hard state after install = %v", h)
		}
		if len(cs.Voters) != 3 {
			t.Fatalf("conf state after install = %v", cs)
		}
		snap, _ := st.Snapshot()
		if snap.GetMetadata().GetIndex() != 100 {
			t.Fatalf("Snapshot() = %v", snap.GetMetadata())
		}
	}
	// The log continues after the snapshot.
	if err := s.Save(hs(3, 101), []*raftpb.Entry{ent(101, 3, "e")}, true); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Entries(101, 102, 1<<20); err != nil || len(got) != 1 {
		t.Fatalf("Entries after install = %v, %v", got, err)
	}
}

// TestCommitRaisedToCompactionPoint: the HardState is written unsynced and
// may be older than a later compaction; entries at or below the compaction
// point were applied, so Open reports them committed (raft refuses to
// start with a commit index below its first index - 1).
func TestCommitRaisedToCompactionPoint(t *testing.T) {
	eng, s := tenEntries(t, 4)
	if err := s.Compact(8); err != nil {
		t.Fatal(err)
	}
	h, _, _ := mustOpen(t, eng).InitialState()
	if h.GetCommit() != 8 || h.GetTerm() != 1 || h.GetVote() != 1 {
		t.Fatalf("hard state after reopening = %v, want commit 8 (the compaction point), term 1, vote 1", h)
	}
	// A saved commit above the compaction point is kept as it is.
	if err := s.Save(hs(1, 9), nil, true); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := mustOpen(t, eng).InitialState(); h.GetCommit() != 9 {
		t.Fatalf("commit after reopening = %d, want 9", h.GetCommit())
	}
}

// tenEntries returns a log holding entries 1..10 of term 1, committed up
// to commit, and its engine.
func tenEntries(t *testing.T, commit uint64) (storage.Engine, *Storage) {
	t.Helper()
	eng := memory.New()
	s := mustOpen(t, eng)
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 10; i++ {
		ents = append(ents, ent(i, 1, "x"))
	}
	if err := s.Save(hs(1, commit), ents, true); err != nil {
		t.Fatal(err)
	}
	return eng, s
}
