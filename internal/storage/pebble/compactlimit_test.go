package pebble

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
)

// TestLimitCompactionsNarrowsConcurrency: with enough L0 sublevels Pebble
// allows two compactions at once on a 2-core machine; while
// LimitCompactions is held it allows one, and two again once every holder
// has released it. Pebble recomputes the figure when it installs a new
// version, so each step flushes another L0 table.
func TestLimitCompactionsNarrowsConcurrency(t *testing.T) {
	// The upper end of the range is the number of cores (at most 4): pin it
	// to 2 so that there is something to narrow on any machine.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	opts := testOptions
	opts.manualCompactionsOnly = true // the L0 tables stay where they are
	e := openAt(t, filepath.Join(t.TempDir(), "db"), opts)
	flushes := 0
	flush := func() {
		t.Helper()
		flushes++
		b := e.NewBatch()
		defer b.Close()
		for i := range 10 { // the same keys every time: each table is a sublevel of its own
			if err := b.Set(versionKey(fmt.Sprintf("key%02d", i), uint64(flushes)), []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		if err := e.db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// Pebble adds one compaction per 10 L0 sublevels (its default
	// L0CompactionConcurrency).
	for range 12 {
		flush()
	}
	if got := e.db.GetAllowedWithoutPermission(); got != 2 {
		t.Fatalf("allowed compactions with %d L0 sublevels and no limit: %d, want 2", flushes, got)
	}
	r1 := e.LimitCompactions()
	r2 := e.LimitCompactions()
	flush()
	if got := e.db.GetAllowedWithoutPermission(); got != 1 {
		t.Fatalf("allowed compactions while limited: %d, want 1", got)
	}
	r1()
	r1() // a second call of the same release does not lift the other holder's limit
	flush()
	if got := e.db.GetAllowedWithoutPermission(); got != 1 {
		t.Fatalf("allowed compactions while one holder remains: %d, want 1", got)
	}
	r2()
	flush()
	if got := e.db.GetAllowedWithoutPermission(); got != 2 {
		t.Fatalf("allowed compactions after every release: %d, want 2", got)
	}
}
