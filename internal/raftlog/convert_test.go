package raftlog

import (
	"errors"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

// oldFormatEngine writes a log the way data dirs held it before the log
// moved to segment files: entries 1..10 under r/e/, the HardState under
// r/h, and a compaction point at 3 under r/s.
func oldFormatEngine(t *testing.T) *memory.Engine {
	t.Helper()
	eng := memory.New()
	b := eng.NewBatch()
	defer b.Close()
	for i := uint64(4); i <= 10; i++ {
		if err := b.Set(storage.RaftEntryKey(i), encodeEntry(ent(i, 2, "v"+string(rune('0'+i%10))))); err != nil {
			t.Fatal(err)
		}
	}
	hv, err := encodeProto(hs(2, 8))
	if err != nil {
		t.Fatal(err)
	}
	mv, err := encodeProto(&raftpb.SnapshotMetadata{Index: proto.Uint64(3), Term: proto.Uint64(1)})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string][]byte{string(storage.KeyRaftHardState): hv, string(storage.KeyRaftSnapshot): mv} {
		if err := b.Set([]byte(k), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	return eng
}

func checkConverted(t *testing.T, s *Storage) {
	t.Helper()
	fi, _ := s.FirstIndex()
	li, _ := s.LastIndex()
	if fi != 4 || li != 10 {
		t.Fatalf("first %d last %d, want 4 10", fi, li)
	}
	if tm, err := s.Term(3); err != nil || tm != 1 {
		t.Fatalf("Term(3) = %d, %v; want the compaction point's term 1", tm, err)
	}
	ents, err := s.Entries(4, 11, 1<<20)
	if err != nil || len(ents) != 7 || string(ents[6].Data) != "v0" || ents[6].GetTerm() != 2 {
		t.Fatalf("Entries = %v, %v", ents, err)
	}
	if h := s.HardState(); h.GetCommit() != 8 || h.GetTerm() != 2 {
		t.Fatalf("hard state = %v", h)
	}
}

// TestOpenConvertsAnEngineLog: a data dir with the log in the engine's
// keys opens with the same log, from segment files, and the keys are gone.
func TestOpenConvertsAnEngineLog(t *testing.T) {
	eng := oldFormatEngine(t)
	s := mustOpen(t, eng)
	checkConverted(t, s)
	for _, k := range [][]byte{storage.RaftEntryKey(4), storage.KeyRaftHardState} {
		if _, err := eng.Get(k); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("key %q after conversion: %v, want gone", k, err)
		}
	}
	if _, err := eng.Get(storage.KeyRaftLogFiles); err != nil {
		t.Fatalf("format mark: %v", err)
	}
	// The converted log works and survives a reopen.
	if err := s.Save(hs(3, 9), []*raftpb.Entry{ent(11, 3, "n")}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, eng)
	if li, _ := s.LastIndex(); li != 11 {
		t.Fatalf("LastIndex after reopen = %d, want 11", li)
	}
}

// TestConversionInterruptedAfterTheFiles: a crash after the segment files
// were moved into place but before the keys were deleted leaves both; the
// next Open keeps the files (the same log) and deletes the keys.
func TestConversionInterruptedAfterTheFiles(t *testing.T) {
	eng := oldFormatEngine(t)
	fs, dir, noSync := eng.RaftLogDir()
	if err := copyKeysToSegments(eng, fs, dir, noSync); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, eng)
	checkConverted(t, s)
	if _, err := eng.Get(storage.RaftEntryKey(4)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("entry key after the interrupted conversion finished: %v, want gone", err)
	}
}

// TestMissingSegmentFilesRefused: once a data dir's log was converted, a
// dir without its segment files is refused rather than started on an empty
// log, which would lose acknowledged writes.
func TestMissingSegmentFilesRefused(t *testing.T) {
	eng := oldFormatEngine(t)
	s := mustOpen(t, eng)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fs, dir, _ := eng.RaftLogDir()
	if err := fs.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	_, err := Open(eng)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Open without segment files: %v, want refused", err)
	}
}
