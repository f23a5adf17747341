package raftlog

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/metastore/metastore/internal/storage/memory"
)

// TestRetainTrimmedKeepsEveryEntry: with RetainTrimmed, ReadPersisted
// returns every entry ever saved across compactions and a conflicting
// suffix replaced by a new leader; without it, only the live log.
func TestRetainTrimmedKeepsEveryEntry(t *testing.T) {
	for _, retain := range []bool{true, false} {
		eng := memory.New()
		s := mustOpen(t, eng)
		if retain {
			s.RetainTrimmed()
		}
		if err := s.Save(hs(1, 4), []*raftpb.Entry{ent(1, 1, "a"), ent(2, 1, "b"), ent(3, 1, "c"), ent(4, 1, "d"), ent(5, 1, "x")}, true); err != nil {
			t.Fatal(err)
		}
		if err := s.Compact(2); err != nil {
			t.Fatal(err)
		}
		// A new leader overwrites the uncommitted entry 5.
		if err := s.Save(hs(2, 6), []*raftpb.Entry{ent(5, 2, "e"), ent(6, 2, "f")}, true); err != nil {
			t.Fatal(err)
		}
		if err := s.Compact(4); err != nil {
			t.Fatal(err)
		}
		h, ents, err := ReadPersisted(eng)
		if err != nil {
			t.Fatal(err)
		}
		if h.GetCommit() != 6 {
			t.Fatalf("commit = %d, want 6", h.GetCommit())
		}
		want := "abcdef"
		if !retain {
			want = "ef"
		}
		var got string
		for i, e := range ents {
			if e.GetIndex() != uint64(6-len(ents)+i+1) {
				t.Fatalf("retain=%v: entry %d has index %d", retain, i, e.GetIndex())
			}
			got += string(e.Data)
		}
		if got != want {
			t.Fatalf("retain=%v: entries %q, want %q", retain, got, want)
		}
		// The raft view is unchanged by the archive.
		if fi, _ := s.FirstIndex(); fi != 5 {
			t.Fatalf("FirstIndex = %d, want 5", fi)
		}
		if _, err := Open(eng); err != nil {
			t.Fatalf("reopen with an archive: %v", err)
		}
	}
}
