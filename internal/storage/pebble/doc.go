// Package pebble implements storage.Engine on CockroachDB's Pebble LSM.
//
// Pebble is the production engine: its write-ahead log gives the durability
// that the Raft log and the applied state rely on (a batch committed with
// sync is on stable storage before Commit returns), its snapshots and
// iterators give the point-in-time reads that MVCC range scans need, and its
// LSM handles the write-heavy, delete-heavy churn of a metadata store
// (overwrites, compaction of old revisions, Raft log truncation) without the
// free-page fragmentation a B+tree file accumulates.
//
// The wrapper exists to make Pebble fit the small storage interface safely:
// Pebble panics when used after Close, so every call is guarded; values are
// copied out so callers never hold memory Pebble may recycle; Pebble's own
// logging is routed to zap; and the "unsafe no fsync" mode is implemented
// below Pebble, in the file system, so that a synced commit still reaches the
// operating system (surviving a process crash) without paying for fsync.
//
// Pebble cannot tell a damaged record near the end of its newest WAL from a
// write torn by a crash: it replays up to there and drops the rest without
// an error. A torn write only ever hits commits that were not synced yet, so
// the engine keeps, next to Pebble's files, the sequence number synced
// commits reached (syncmark.go, rewritten after each synced commit without
// fsync) and refuses to open a store that recovered less
// (ErrLostSyncedWrites): acknowledged writes are never dropped silently,
// while a legitimately torn, unacknowledged tail is still accepted.
//
// New stores order keys with a comparer that is bytewise like Pebble's
// default but splits MVCC version keys into user key and revision
// (storage.MVCCPrefixLen), so that table bloom filters answer "does this
// user key have any version here" and a put of a new key, or a read of a
// missing one, reads no data block. Stores created with the default
// comparer keep it (Pebble fixes the comparer at creation) and seek
// without filters.
//
// A new write-ahead log is kept written with zeros a megabyte ahead of
// Pebble's writes (zerowal.go): a synced commit that overwrites written
// blocks needs no journal commit of the file system, about half the cost of
// one that appends to preallocated space.
//
// Values of 1 KiB and more are kept in blob files apart from the keys
// (Pebble's value separation, valuesep.go): compactions then move keys and
// small handles instead of rewriting the values again at every level, and a
// count of a prefix reads keys only. CompactAll also rewrites the blob files,
// so that the space of deleted values is returned as etcd's defragmentation
// returns it. While an MVCC compaction runs (DeferValueRewrites,
// compactdefer.go), compactions carry value references over rather than
// rewrite the values its tombstones leave alive.
package pebble
