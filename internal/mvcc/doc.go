// Package mvcc is the revisioned key-value store behind the etcd KV API.
//
// Every write transaction gets one new main revision; each operation in it a
// sub revision. All versions of every key live on the storage engine, not in
// RAM, so data sets may be far larger than memory:
//
//	k/<escaped user key>\x00\x01<^main:8 BE><^sub:8 BE>  version record (newest first per key)
//	h/<main:8 BE><sub:8 BE>                              flag byte + user key (revision-ordered history)
//	m/current_revision, m/compact_revision,
//	m/scheduled_compact_revision, m/mvcc_key_count       meta
//
// User keys are escaped (0x00 -> 0x00 0xFF) and terminated by 0x00 0x01 so that
// the byte order of encoded keys follows the byte order of user keys and a
// user-key range maps to one contiguous engine range. Revisions are inverted so
// a read at the latest revision costs one step per key, and a read at revision
// R is one seek per key.
//
// Concurrency: a single goroutine (apply) writes through a Writer, which stages
// everything in one storage.Batch plus an in-memory overlay; nothing becomes
// visible to readers until Writer.Commit publishes the new revision after the
// batch committed. Readers run concurrently and never take a lock: they read
// the published revision first, then open an engine iterator (a point-in-time
// view), then read the published compaction revision, which is enough to make
// background physical compaction invisible to them.
//
// Compaction at R is published at once (reads below R fail with ErrCompacted)
// and then removes, in the background and in bounded batches, every version
// that no read at a revision >= R can see: for each key the versions older than
// its newest version <= R, and that newest version too if it is a tombstone
// older than R (a tombstone exactly at R is kept, as etcd >= 3.5.16 does, so a
// watch from R still sees the delete).
package mvcc
