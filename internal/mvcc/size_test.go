package mvcc

import (
	"testing"

	"github.com/metastore/metastore/internal/storage/memory"
)

// TestLogicalSizeFallsWithCompaction checks the quota's measure: writes
// add to it, compaction takes exactly the removed versions off again, and
// the figure survives a reopen.
func TestLogicalSizeFallsWithCompaction(t *testing.T) {
	fresh, _ := newStore(t)
	put(t, fresh, "k", "final")
	put(t, fresh, "later", "y")
	want := fresh.LogicalSize()
	if want <= 0 {
		t.Fatalf("size after one put = %d", want)
	}

	eng := memory.New()
	s := openStore(t, eng)
	put(t, s, "k", "first value, longer")
	put(t, s, "k", "second")
	put(t, s, "k", "final")
	put(t, s, "gone", "x")
	del(t, s, "gone", "")
	// A tombstone at the compaction revision is kept (etcd >= 3.5.16), so
	// write once more to make it an old one.
	put(t, s, "later", "y")
	if s.LogicalSize() <= want {
		t.Fatalf("size with history %d not above one version %d", s.LogicalSize(), want)
	}
	<-compact(t, s, s.Rev())
	if got := s.LogicalSize(); got != want {
		t.Fatalf("size after compacting to the latest revision = %d, want %d (one version of k and of later)", got, want)
	}
	s.Close()
	if got := openStore(t, eng).LogicalSize(); got != want {
		t.Fatalf("size after reopen = %d, want %d", got, want)
	}
}
