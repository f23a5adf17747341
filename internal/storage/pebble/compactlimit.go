package pebble

import (
	"sync"
	"sync/atomic"
)

// compactionLimit lowers the number of compactions Pebble may run at once
// while a caller holds it. An MVCC compaction deletes two keys per removed
// version (the version and its history record), 1.2M point tombstones for
// the ~600k revisions of a 1 GiB store written four times; Pebble raises
// its compaction concurrency to the upper end of the range as those
// tombstones pile up (its "compactable garbage" and L0 read-amplification
// signals), so on a 2-core member its compactions of them took both cores
// from the requests while the MVCC compaction ran beside them (issue 11:
// "p99 during compaction vs without"). Held, the range is narrowed to its
// lower end (one compaction besides delete-only ones, which Pebble does
// not count and which cost next to nothing); the tombstones are compacted
// all the same, one at a time, and Pebble widens the range again as soon
// as the holder releases it (docs/adr/0023-compaction-concurrency-cap.md).
//
// Pebble reads the range whenever it installs a new version (every flush
// and compaction), so narrowing takes effect within one flush, which an
// MVCC compaction's batches cause soon enough.
type compactionLimit struct {
	held atomic.Int32 // holders that have not released yet
}

// wrap returns base narrowed to its lower end while the limit is held.
func (l *compactionLimit) wrap(base func() (int, int)) func() (int, int) {
	return func() (int, int) {
		lower, upper := base()
		if l.held.Load() > 0 {
			lower = max(min(lower, upper), 1)
			return lower, lower
		}
		return lower, upper
	}
}

// acquire holds the limit until the returned function is called (once
// counts; more calls do nothing).
func (l *compactionLimit) acquire() (release func()) {
	l.held.Add(1)
	return sync.OnceFunc(func() { l.held.Add(-1) })
}

// LimitCompactions makes Pebble run at most one compaction at a time
// (besides delete-only compactions) until release is called, so that a
// bulk deletion such as an MVCC compaction leaves the other cores to the
// requests. Holders may overlap; the limit lasts until the last release.
func (e *Engine) LimitCompactions() (release func()) {
	return e.compactLimit.acquire()
}
