package mvcc

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/pebble"
)

// deferWatch is a Pebble engine that notes who defers its value rewrites:
// how many holders there are when a snapshot is taken (the compaction takes
// one as its scan starts) and how many calls there were.
type deferWatch struct {
	*pebble.Engine
	held  atomic.Int32
	calls atomic.Int32

	mu          sync.Mutex // guards heldAtSnaps
	heldAtSnaps []int32
}

func (w *deferWatch) DeferValueRewrites() func() {
	w.calls.Add(1)
	w.held.Add(1)
	release := w.Engine.DeferValueRewrites()
	return sync.OnceFunc(func() {
		w.held.Add(-1)
		release()
	})
}

func (w *deferWatch) NewSnapshot() storage.Snapshot {
	w.mu.Lock()
	w.heldAtSnaps = append(w.heldAtSnaps, w.held.Load())
	w.mu.Unlock()
	return w.Engine.NewSnapshot()
}

// TestCompactionDefersValueRewrites: a compaction defers the engine's
// value rewrites from before its scan until it has finished, once per
// compaction, and releases them before its completion is signalled.
func TestCompactionDefersValueRewrites(t *testing.T) {
	eng, err := pebble.Open(filepath.Join(t.TempDir(), "db"), pebble.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	w := &deferWatch{Engine: eng}
	s := openStore(t, w, WithCompactionBatchLimit(1))
	history(t, s)
	for i, rev := range []int64{5, 8} {
		w.mu.Lock()
		w.heldAtSnaps = nil
		w.mu.Unlock()
		waitDone(t, compact(t, s, rev))
		if got := w.calls.Load(); got != int32(i+1) {
			t.Fatalf("after compaction %d: %d DeferValueRewrites calls, want %d", i+1, got, i+1)
		}
		if got := w.held.Load(); got != 0 {
			t.Fatalf("after compaction %d finished: rewrites deferred by %d holders, want 0", i+1, got)
		}
		w.mu.Lock()
		snaps := w.heldAtSnaps
		w.mu.Unlock()
		if len(snaps) != 1 || snaps[0] != 1 {
			t.Fatalf("compaction %d: holders when snapshots were taken %v, want [1]", i+1, snaps)
		}
	}
	if got := versions(t, w); got != "a@9 b@7 c@8t d@10 " {
		t.Fatalf("versions after compactions: %s", got)
	}
}
