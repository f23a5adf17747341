package mvcc

import (
	"bytes"
	"context"
	"fmt"
	"hash"
	"runtime"

	"github.com/metastore/metastore/internal/crc32c"
	"github.com/metastore/metastore/internal/storage"
)

// maxRecordedHashes is how many compaction hashes are remembered (etcd keeps 10).
const maxRecordedHashes = 10

type recordedHash struct {
	hash      uint32
	prev, rev int64
}

// HashResult is what HashKV reports.
type HashResult struct {
	Hash uint32
	// Revision is the current revision of the store.
	Revision int64
	// CompactRevision is the compaction revision the hash starts from.
	CompactRevision int64
	// HashRevision is the revision the hash covers up to.
	HashRevision int64
}

func (s *Store) recordHash(h recordedHash) {
	s.hashMu.Lock()
	defer s.hashMu.Unlock()
	s.hashes = append(s.hashes, h)
	if len(s.hashes) > maxRecordedHashes {
		s.hashes = s.hashes[len(s.hashes)-maxRecordedHashes:]
	}
}

func (s *Store) recorded(rev int64) (recordedHash, bool) {
	s.hashMu.Lock()
	defer s.hashMu.Unlock()
	for _, h := range s.hashes {
		if h.rev == rev {
			return h, true
		}
	}
	return recordedHash{}, false
}

// HashByRev implements etcd's HashKV: a hash of every version with a revision
// <= rev that a store compacted at the current compaction revision holds,
// independent of how far the physical compaction got. For a revision at which
// a compaction ran, the hash recorded by that compaction is returned (its
// CompactRevision is the compaction before it), as etcd does. rev <= 0 means
// the current revision, hashed from the current compaction revision: like
// etcd, only an explicit revision is looked up among the recorded hashes, so
// HashKV(0) right after Compact(c) at the current revision answers c.
//
// It gives up, with ctx's error, once ctx is done: while it waits for a
// compaction's scan (minutes on a large store with a paced compactor) and
// while it scans.
func (s *Store) HashByRev(ctx context.Context, rev int64) (HashResult, error) {
	explicit := rev > 0
	cur := s.Rev()
	if comp := s.CompactRev(); rev > 0 && rev < comp {
		return HashResult{}, ErrCompacted
	}
	if rev > cur {
		return HashResult{Revision: cur}, ErrFutureRev
	}
	if rev <= 0 {
		rev = cur
	}
	if comp := s.comp.Load(); comp != nil {
		if j := comp.pendingJob(rev); j != nil {
			select {
			case <-j.hashed:
			case <-comp.stopc:
			case <-ctx.Done():
				return HashResult{}, fmt.Errorf("mvcc: hash at revision %d: wait for the compaction's hash: %w", rev, ctx.Err())
			}
		}
	}
	if h, ok := s.recorded(rev); ok && explicit {
		return HashResult{Hash: h.hash, Revision: cur, CompactRevision: h.prev, HashRevision: rev}, nil
	}
	snap := s.eng.NewSnapshot()
	defer func() { _ = snap.Close() }()
	comp := s.CompactRev() // after the snapshot: see the package comment
	if rev < comp {
		return HashResult{}, ErrCompacted
	}
	h, err := s.hashOver(ctx, snap, comp, rev)
	if err != nil {
		return HashResult{}, err
	}
	return HashResult{Hash: h, Revision: cur, CompactRevision: comp, HashRevision: rev}, nil
}

// hashOver hashes, in key order and newest first per key, every version with
// main <= rev that is either newer than compactRev, or the newest version
// <= rev of its key and live (kvHasher). These are etcd's HashKV rules, and
// they make the hash the same whatever part of a compaction was done.
func (s *Store) hashOver(ctx context.Context, r storage.Reader, compactRev, rev int64) (uint32, error) {
	kh := newKVHasher(compactRev, rev)
	pace := newScanPacer(ctx)
	it, err := r.NewIter(storage.IterOptions{LowerBound: prefixK, UpperBound: storage.PrefixEnd(prefixK)})
	if err != nil {
		return 0, fmt.Errorf("mvcc: hash iterator: %w", err)
	}
	defer func() { _ = it.Close() }()
	var group []byte
	newest := false // the next version <= rev of this group is its newest
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		g, main, _, err := splitVersionKey(k)
		if err != nil {
			return 0, err
		}
		if group == nil || !bytes.Equal(g, group) {
			group = append(group[:0], g...)
			newest = true
		}
		if err := pace.step(); err != nil {
			return 0, fmt.Errorf("mvcc: hash at revision %d: %w", rev, err)
		}
		if main > rev {
			continue
		}
		kh.add(it, main, newest)
		newest = false
	}
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("mvcc: hash scan: %w", err)
	}
	return kh.sum(), nil
}

// kvHasher computes etcd's HashKV over (compactRev, rev] from the versions
// of the k/ space fed to it in key order, newest first per key: the store's
// own HashKV (hashOver) and a compaction's removal pass, which hashes as it
// goes (compact.go), share it, so the two agree by construction.
type kvHasher struct {
	h               hash.Hash32
	compactRev, rev int64
}

func newKVHasher(compactRev, rev int64) *kvHasher {
	h := crc32c.New()
	_, _ = h.Write([]byte("key"))
	return &kvHasher{h: h, compactRev: compactRev, rev: rev}
}

// add hashes the version under it, of revision main <= rev, if HashKV
// covers it: every version newer than compactRev, and at or below it only
// the newest version <= rev of its key (newest) if live; so a tombstone at
// compactRev (which compaction keeps, older stores did not) is left out.
func (kh *kvHasher) add(it storage.Iterator, main int64, newest bool) {
	if main <= kh.compactRev && (!newest || isTombstone(it)) {
		return
	}
	_, _ = kh.h.Write(it.Key())
	_, _ = kh.h.Write(it.Value())
}

func (kh *kvHasher) sum() uint32 { return kh.h.Sum32() }

// isTombstone reports whether the record under it is a tombstone. A record
// longer than a tombstone's is live (recordLen: no value read where the
// engine can tell), so only a short record is read for its flag.
func isTombstone(it storage.Iterator) bool {
	if recordLen(it) > tombRecordLen {
		return false
	}
	v := it.Value()
	return len(v) > 0 && v[0]&flagTombstone != 0
}

// Hash is Maintenance.Hash: a hash of the whole MVCC key space as stored
// (it changes as physical compaction progresses, like etcd's). It gives up,
// with ctx's error, once ctx is done.
func (s *Store) Hash(ctx context.Context) (uint32, error) {
	h := crc32c.New()
	pace := newScanPacer(ctx)
	snap := s.eng.NewSnapshot()
	defer func() { _ = snap.Close() }()
	for _, p := range [][]byte{prefixK, prefixH} {
		it, err := snap.NewIter(storage.IterOptions{LowerBound: p, UpperBound: storage.PrefixEnd(p)})
		if err != nil {
			return 0, fmt.Errorf("mvcc: hash iterator: %w", err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			if err := pace.step(); err != nil {
				_ = it.Close()
				return 0, fmt.Errorf("mvcc: hash: %w", err)
			}
			_, _ = h.Write(it.Key())
			_, _ = h.Write(it.Value())
		}
		err = it.Error()
		_ = it.Close()
		if err != nil {
			return 0, fmt.Errorf("mvcc: hash scan: %w", err)
		}
	}
	return h.Sum32(), nil
}

// scanPacer is what a hash's scan of the whole store (HashKV, Hash) does
// every yieldVersions records: it yields its processor, as the compactor
// does (yielder), and stops once its caller's context is done, so that a
// client that gave up does not leave a scan of every value running
// (minutes on a multi-GiB store).
type scanPacer struct {
	ctx context.Context
	y   yielder
}

func newScanPacer(ctx context.Context) *scanPacer {
	return &scanPacer{ctx: ctx, y: yielder{gosched: runtime.Gosched}}
}

func (p *scanPacer) step() error {
	if p.y.add(1) {
		return p.ctx.Err()
	}
	return nil
}
