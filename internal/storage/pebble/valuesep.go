package pebble

import (
	"bytes"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/metastore/metastore/internal/storage"
)

// Value separation: values of at least valueSepMinSize bytes are written
// to blob files at flush, and the tables keep only the key and a handle
// (a few bytes). Two costs of a multi-GiB store shrink with it:
//
//   - Compactions rewrite keys and handles, not values: a value is written
//     once at flush and again only when its blob file is rewritten to
//     reclaim garbage. Before, every L0 -> Lbase -> ... compaction copied
//     the values too, and under a sustained load of large transactions
//     compaction fell behind and Pebble stalled writes (issue 11: "L0 file
//     count limit exceeded" at 8 GiB).
//   - A walk that looks at keys only (a count, which decides liveness from
//     the record's length, see mvcc's engineScan) reads table blocks holding
//     keys and handles, not the values: at 8 GiB of 1-10 KiB values a count
//     of a whole prefix read ~3 GB before.
//
// Reading a separated value costs one more block lookup (in the block
// cache when hot). Small values stay inline, so the small-value workloads
// of the benchmark suite (256-byte values) do not change at all.
//
// The format it needs (pebble.FormatValueSeparation) is what
// pebble.FormatNewest is in the pinned Pebble, which Open asks for: a store
// written before, without blob files, opens and is ratcheted to it, and
// its tables' values move to blob files as compactions rewrite them
// (TestValueSeparationOpensOlderStores).
const (
	// valueSepMinSize: a Kubernetes object is rarely below 1 KiB, and the
	// Raft entries of large transactions are far above; the benchmark
	// suite's 256-byte values (and their ~300-byte Raft entries) stay
	// inline.
	valueSepMinSize = 1 << 10
	// valueSepMaxRefDepth bounds how many overlapping blob files one table
	// may point into before a compaction rewrites its values into a new
	// one: more saves rewrites, fewer keeps the values of a key range
	// together for range reads. Kubernetes keys are written all over the
	// key space, so every flush overlaps the whole of Lbase and the depth
	// grows by the L0 sublevels at every L0 compaction: with the 10 of
	// Pebble's own tests and tools, compactions rewrote 1.47 bytes of
	// values per byte loaded, with 20 0.58, with 50 0.03-0.08
	// (BenchmarkLargeTxnLoad; the WAL and the flushes write 2 each: the
	// Raft entry and the versions).
	valueSepMaxRefDepth = 50
	// valueSepGarbageRatio and valueSepRewriteAge: a blob file in which a
	// quarter of the values are no longer referenced (overwritten versions
	// removed by MVCC compaction, Raft entries removed by log truncation)
	// and that is at least two minutes old gets its live values rewritten,
	// so disk use stays within ~1.3x of the live values while young files,
	// whose values are often about to die, are left alone.
	valueSepGarbageRatio = 0.25
	valueSepRewriteAge   = 2 * time.Minute
)

// valueSep is the value separation policy of one open store. Pebble asks
// for the policy at the start of every flush and compaction, so CompactAll
// can change it for the compactions it runs.
type valueSep struct {
	// rewriting counts the CompactAll calls in progress. While it is
	// non-zero every compaction writes the values it keeps into new blob
	// files instead of carrying over references to the old ones: a table
	// compaction drops the references of deleted values, but a blob file
	// is deleted only once no table refers to any of its values, and
	// Pebble's own rewrites of garbage-laden blob files run one at a time,
	// at low priority, some minutes later. CompactAll, like etcd's
	// defragmentation, must give the space back when it returns.
	rewriting atomic.Int32
	// deferring counts the holders of deferRewrites (compactdefer.go):
	// while it is non-zero and no CompactAll runs, the reference depth
	// limit is ten times valueSepMaxRefDepth.
	deferring atomic.Int32
}

func (v *valueSep) policy() pebble.ValueSeparationPolicy {
	p := pebble.ValueSeparationPolicy{
		Enabled:               true,
		MinimumSize:           valueSepMinSize,
		MaxBlobReferenceDepth: valueSepMaxRefDepth,
		RewriteMinimumAge:     valueSepRewriteAge,
		TargetGarbageRatio:    valueSepGarbageRatio,
	}
	if v.rewriting.Load() > 0 {
		// A compaction writes new blob files when its inputs' reference
		// depth (at least 1 for a table with separated values) exceeds
		// this. Pebble validates the policy (depth > 0) only at open; at
		// compaction time 0 just means "always rewrite"
		// (TestCompactAllReclaimsSpace checks that it does).
		p.MaxBlobReferenceDepth = 0
	} else if v.deferring.Load() > 0 {
		p.MaxBlobReferenceDepth *= 10
	}
	return p
}

// spanBoundaries are the key families that flushes and compactions put in
// tables (and so blob files) of their own. The Raft log (r/) is written
// and truncated in bulk a few thousand entries later, MVCC versions (k/)
// live until overwritten and compacted: kept apart, a truncated stretch of
// log frees whole blob files instead of leaving garbage inside files that
// also hold live MVCC values, which only a rewrite would reclaim. The
// snapshot staging area (s/) is likewise written and dropped as a whole.
var spanBoundaries = [][]byte{
	storage.PrefixMVCCKey, storage.PrefixEnd(storage.PrefixMVCCKey),
	storage.PrefixRaft, storage.PrefixEnd(storage.PrefixRaft),
	storage.PrefixSnapStaging, storage.PrefixEnd(storage.PrefixSnapStaging),
}

// spanPolicy returns the policy up to the first boundary after start, so
// that no output table spans two families.
//
// The policy turns off Pebble's value blocks (DisableValueSeparationBySuffix:
// the values of a key's older versions in blocks of their own at the end of
// a table). The table writer holds all of an output table's value blocks in
// the Go heap until the table is finished, and tables below L0 are cut at
// 8 to 512 MB: at the end of the benchmark suite 55 to 110 MB of the heap
// were such buffers. Without them (measured alternating, single member,
// 1000 clients, shared machine): peak RSS at the end of the suite 184/206
// -> 146/148 MiB, Go heap at the end 162 -> 50 MB, and the server's CPU per
// request lower too (put 56.9/57.9 -> 49.6/48.3 us, txn-put 66.2/57.0 ->
// 55.7/58.8, linearizable range 30.7/30.1 -> 27.3/27.2). Older versions'
// values (below valueSepMinSize; larger ones go to blob files either way)
// now sit inline in data blocks, as in etcd's bbolt, until an MVCC
// compaction removes them.
func spanPolicy(start []byte) (pebble.SpanPolicy, []byte, error) {
	var end []byte
	for _, b := range spanBoundaries {
		if bytes.Compare(b, start) > 0 && (end == nil || bytes.Compare(b, end) < 0) {
			end = b
		}
	}
	return pebble.SpanPolicy{DisableValueSeparationBySuffix: true}, end, nil
}
