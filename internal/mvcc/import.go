package mvcc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/metastore/metastore/internal/storage"
)

// Importer writes versions with revisions chosen by the caller into an empty
// engine, for a restore from another store's snapshot (an etcd bbolt file):
// the Writer numbers revisions itself, which would renumber the history.
// Versions must come in increasing (main, sub) order, which is how etcd's key
// bucket sorts them. It is not safe for concurrent use, and no Store may be
// open on the engine until Finish returned.
type Importer struct {
	eng               storage.Engine
	b                 storage.Batch
	buf               []byte
	written           int64
	pending           int64 // bytes staged in b since the last commit
	lastMain, lastSub int64
	n                 int64
}

// importBatchBytes bounds one import batch, so memory stays flat whatever
// the snapshot size.
const importBatchBytes = 4 << 20

// NewImporter starts an import into eng, which must hold no MVCC data.
func NewImporter(eng storage.Engine) (*Importer, error) {
	it, err := eng.NewIter(storage.IterOptions{LowerBound: prefixK, UpperBound: prefixKEnd})
	if err != nil {
		return nil, fmt.Errorf("mvcc: import: %w", err)
	}
	nonEmpty := it.First()
	err = errors.Join(it.Error(), it.Close())
	if err != nil {
		return nil, fmt.Errorf("mvcc: import: %w", err)
	}
	if nonEmpty {
		return nil, errors.New("mvcc: import into a store that already holds keys")
	}
	return &Importer{eng: eng, b: eng.NewBatch()}, nil
}

// ImportedVersion is one version of a key as another store recorded it.
type ImportedVersion struct {
	Key       []byte
	Main, Sub int64
	Tombstone bool
	// CreateRevision, Version, Lease and Value are ignored for a tombstone.
	CreateRevision, Version, Lease int64
	Value                          []byte
}

// Add stages one version.
func (im *Importer) Add(v ImportedVersion) error {
	if v.Main < 1 || v.Sub < 0 {
		return fmt.Errorf("mvcc: import: bad revision %d_%d", v.Main, v.Sub)
	}
	if im.n > 0 && (v.Main < im.lastMain || (v.Main == im.lastMain && v.Sub <= im.lastSub)) {
		return fmt.Errorf("mvcc: import: revision %d_%d after %d_%d", v.Main, v.Sub, im.lastMain, im.lastSub)
	}
	if !v.Tombstone && (v.CreateRevision < 1 || v.CreateRevision > v.Main || v.Version < 1) {
		return fmt.Errorf("mvcc: import: key %q at %d: create revision %d, version %d", v.Key, v.Main, v.CreateRevision, v.Version)
	}
	im.lastMain, im.lastSub = v.Main, v.Sub
	im.n++
	rec := version{main: v.Main, sub: v.Sub, tomb: v.Tombstone, create: v.CreateRevision, ver: v.Version, lease: v.Lease, value: v.Value}
	buf := appendGroup(im.buf[:0], v.Key)
	glen := len(buf)
	buf = appendRev(buf, v.Main, v.Sub)
	vk := buf
	buf = appendRecord(buf, &rec)
	val := buf[len(vk):]
	if err := im.b.Set(vk, val); err != nil {
		return fmt.Errorf("mvcc: import: %w", err)
	}
	vkLen, valLen := len(vk), len(val)
	buf = appendHistoryKey(buf[:0], v.Main, v.Sub)
	hk := buf
	buf = appendHistory(buf, v.Key, v.Tombstone)
	if err := im.b.Set(hk, buf[len(hk):]); err != nil {
		return fmt.Errorf("mvcc: import: %w", err)
	}
	im.buf = buf
	size := versionSize(vkLen, valLen, len(hk), glen)
	im.written += size
	im.pending += size
	if im.pending >= importBatchBytes {
		return im.flush()
	}
	return nil
}

func (im *Importer) flush() error {
	im.pending = 0
	err := im.b.Commit(false)
	err = errors.Join(err, im.b.Close())
	im.b = im.eng.NewBatch()
	if err != nil {
		return fmt.Errorf("mvcc: import: commit: %w", err)
	}
	return nil
}

// Revisions are a store's revision counters.
type Revisions struct {
	Current int64
	// Compacted is the last finished compaction, -1 for none; Scheduled a
	// compaction requested but maybe unfinished (Open resumes it), -1 for
	// none.
	Compacted, Scheduled int64
}

// Finish stages the store's metadata, commits and syncs. It returns, for the
// lease package, the live keys that are attached to a lease, as (lease, key)
// calls of attached, made after the data is durable and in key order.
func (im *Importer) Finish(rev Revisions, attached func(lease int64, key []byte) error) error {
	if rev.Current < im.lastMain {
		rev.Current = im.lastMain
	}
	if rev.Current < rev.Compacted {
		rev.Current = rev.Compacted
	}
	if rev.Current < 1 {
		rev.Current = 1
	}
	if err := im.flush(); err != nil {
		im.Close()
		return err
	}
	live, err := im.scanLatest(attached)
	if err != nil {
		im.Close()
		return err
	}
	var errs []error
	errs = append(errs, im.b.Set(storage.KeyCurrentRevision, putInt64(rev.Current)),
		im.b.Set(keyKeyCount, putInt64(live)), im.b.Set(keyWrittenBytes, putInt64(im.written)))
	if rev.Compacted > 0 {
		errs = append(errs, im.b.Set(storage.KeyCompactRevision, putInt64(rev.Compacted)))
	}
	if rev.Scheduled > 0 {
		errs = append(errs, im.b.Set(storage.KeyScheduledCompact, putInt64(rev.Scheduled)))
	}
	if err := errors.Join(errs...); err != nil {
		im.Close()
		return fmt.Errorf("mvcc: import: stage metadata: %w", err)
	}
	err = im.b.Commit(true)
	err = errors.Join(err, im.b.Close())
	im.b = nil
	if err != nil {
		return fmt.Errorf("mvcc: import: commit metadata: %w", err)
	}
	return nil
}

// Close drops what was not committed yet.
func (im *Importer) Close() {
	if im.b != nil {
		_ = im.b.Close()
		im.b = nil
	}
}

// scanLatest counts the keys whose newest version is live and reports each
// one's lease.
func (im *Importer) scanLatest(attached func(lease int64, key []byte) error) (int64, error) {
	it, err := im.eng.NewIter(storage.IterOptions{LowerBound: prefixK, UpperBound: prefixKEnd})
	if err != nil {
		return 0, fmt.Errorf("mvcc: import: %w", err)
	}
	defer it.Close()
	var live int64
	var group []byte
	for ok := it.First(); ok; ok = it.Next() {
		g, main, sub, err := splitVersionKey(it.Key())
		if err != nil {
			return 0, err
		}
		if group != nil && bytes.Equal(g, group) {
			continue // an older version of the same key
		}
		group = append(group[:0], g...)
		v, err := decodeRecord(it.Value(), main, sub, false)
		if err != nil {
			return 0, err
		}
		if v.tomb {
			continue
		}
		live++
		if v.lease != 0 && attached != nil {
			u, err := groupUserKey(g)
			if err != nil {
				return 0, err
			}
			if err := attached(v.lease, u); err != nil {
				return 0, err
			}
		}
	}
	return live, it.Error()
}

// ReadRevisions reads the revision counters of the store on r (a snapshot of
// an engine), as Open would load them.
func ReadRevisions(r storage.Reader) (Revisions, error) {
	rev := Revisions{Compacted: -1, Scheduled: -1}
	cur, ok, err := readInt64(r, storage.KeyCurrentRevision)
	if err != nil {
		return rev, err
	}
	rev.Current = 1
	if ok && cur > 1 {
		rev.Current = cur
	}
	if c, ok, err := readInt64(r, storage.KeyCompactRevision); err != nil {
		return rev, err
	} else if ok {
		rev.Compacted = c
	}
	if c, ok, err := readInt64(r, storage.KeyScheduledCompact); err != nil {
		return rev, err
	} else if ok {
		rev.Scheduled = c
	}
	return rev, nil
}

// ExportVersions calls fn with every version r holds, in (main, sub) order,
// which is the order of etcd's key bucket. The history gives the order, the
// version record the content; v.Value is only valid during the call.
func ExportVersions(r storage.Reader, fn func(v ImportedVersion) error) error {
	hit, err := r.NewIter(storage.IterOptions{LowerBound: prefixH, UpperBound: storage.PrefixEnd(prefixH)})
	if err != nil {
		return fmt.Errorf("mvcc: export: %w", err)
	}
	defer hit.Close()
	// One iterator over the versions, positioned by seeks: much cheaper
	// than a Get per version, which builds an iterator each time.
	kit, err := r.NewIter(storage.IterOptions{LowerBound: prefixK, UpperBound: prefixKEnd})
	if err != nil {
		return fmt.Errorf("mvcc: export: %w", err)
	}
	defer kit.Close()
	var vk []byte
	for ok := hit.First(); ok; ok = hit.Next() {
		main, sub, err := splitHistoryKey(hit.Key())
		if err != nil {
			return err
		}
		u, tomb, err := decodeHistory(hit.Value())
		if err != nil {
			return err
		}
		vk = appendRev(appendGroup(vk[:0], u), main, sub)
		if !kit.SeekGE(vk) || !bytes.Equal(kit.Key(), vk) {
			if err := kit.Error(); err != nil {
				return fmt.Errorf("mvcc: export: %w", err)
			}
			return fmt.Errorf("mvcc: export: version %d_%d of %q is in the history but not stored", main, sub, u)
		}
		rec := kit.Value()
		v, err := decodeRecord(rec, main, sub, true)
		if err != nil {
			return fmt.Errorf("mvcc: export: version %d_%d of %q: %w", main, sub, u, err)
		}
		if v.tomb != tomb {
			return fmt.Errorf("mvcc: export: version %d_%d of %q: history and version disagree on deletion", main, sub, u)
		}
		if err := fn(ImportedVersion{Key: u, Main: main, Sub: sub, Tombstone: v.tomb,
			CreateRevision: v.create, Version: v.ver, Lease: v.lease, Value: v.value}); err != nil {
			return err
		}
	}
	return hit.Error()
}
