package pebble

import "sync"

// deferRewrites makes Pebble's compactions carry over the references to
// the values they keep, rather than rewrite those values into new blob
// files, until release is called: during an MVCC compaction. Holders may
// overlap; the deferral lasts until the last release (a second call of the
// same release does nothing).
//
// A table compaction rewrites the values of its inputs when their blob
// reference depth (summed over the levels it joins) exceeds the policy's
// MaxBlobReferenceDepth (valuesep.go). The tombstones of an MVCC
// compaction (two per removed version: the version and its history
// record, 1.2M for the ~600k revisions of a 1 GiB store written four
// times) cover keys all over the key space, so Pebble compacts them down
// into nearly every table of the bottom levels, whose depths add up past
// the limit: each such compaction read and rewrote every live value of its
// tables. In a CPU profile taken while a compaction ran, those rewrites'
// blob file writes were ~40% of the server's CPU (one multi-level
// compaction wrote 39 blob files over 22 s), next to the requests whose
// p99 they raised (issue 11, "p99 during compaction vs without";
// docs/adr/0023-compaction-defers-value-rewrites.md).
//
// While held, the depth limit is ten times the policy's (valueSep.policy):
// the tombstone compactions rewrite keys and handles only. The values of the removed
// versions stay in their blob files as garbage until Pebble's blob file
// rewrites (one at a time, at low priority, of files at least two minutes
// old with a quarter garbage) or a later compaction of the table, after
// the release, reclaim them, as they do for every other deletion. A policy
// that rewrites everything (CompactAll's depth 0) is left as it is.
func (v *valueSep) deferRewrites() (release func()) {
	v.deferring.Add(1)
	return sync.OnceFunc(func() { v.deferring.Add(-1) })
}

// DeferValueRewrites makes the compactions that start until release is
// called keep the values they carry in the blob files they are in, instead
// of rewriting them, so that a bulk deletion such as an MVCC compaction
// does not make Pebble rewrite the live values of every table its
// tombstones reach. Holders may overlap; the deferral lasts until the last
// release.
func (e *Engine) DeferValueRewrites() (release func()) {
	return e.valueSep.deferRewrites()
}
