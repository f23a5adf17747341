package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/metastore/metastore/internal/alarm"
	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/etcdsnap"
	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/migrate/mode"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/version"
)

// Snapshotter is the part of a storage engine Export needs.
type Snapshotter interface {
	NewSnapshot() storage.Snapshot
}

// scratchPrefix names the directories Export writes its file in.
const scratchPrefix = "snapshot-"

// Export writes a point-in-time copy of the state eng holds as an etcd
// backend file in a new file under dir and returns it open for reading,
// with its size; closing it removes the file. This is what
// Maintenance.Snapshot streams, so that `etcdutl snapshot status|restore`
// read what `etcdctl snapshot save` wrote.
func Export(eng Snapshotter, dir string) (io.ReadCloser, int64, error) {
	tmp, err := os.MkdirTemp(dir, scratchPrefix+"*")
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot: scratch dir: %w", err)
	}
	path := filepath.Join(tmp, "db")
	snap := eng.NewSnapshot()
	err = WriteEtcd(snap, path)
	err = errors.Join(err, snap.Close())
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, 0, fmt.Errorf("snapshot: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		_ = os.RemoveAll(tmp)
		return nil, 0, fmt.Errorf("snapshot: %w", err)
	}
	return &removeOnClose{ReadCloser: f, dir: tmp}, st.Size(), nil
}

type removeOnClose struct {
	io.ReadCloser
	dir string
}

func (r *removeOnClose) Close() error {
	return errors.Join(r.ReadCloser.Close(), os.RemoveAll(r.dir))
}

// WriteEtcd writes the state r holds (MVCC history, leases, auth, alarms)
// as an etcd backend file at path.
func WriteEtcd(r storage.Reader, path string) error {
	rev, err := mvcc.ReadRevisions(r)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	leases, err := lease.ReadRecords(r)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	as, err := auth.ReadSnapshot(r)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	al, err := alarm.Load(r)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	meta := etcdsnap.Meta{Scheduled: rev.Scheduled, Finished: rev.Compacted, ClusterVersion: version.ClusterVersion}
	if v, err := r.Get(storage.KeyAppliedIndex); err == nil && len(v) >= 16 {
		meta.ConsistentIndex, meta.Term = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("snapshot: read applied index: %w", err)
	}
	w, err := etcdsnap.Create(path)
	if err != nil {
		return err
	}
	err = mvcc.ExportVersions(r, w.PutVersion)
	for _, l := range leases {
		if err != nil {
			break
		}
		err = w.PutLease(l)
	}
	if err == nil {
		err = w.PutAuth(as)
	}
	if err == nil {
		err = w.PutAlarms(al.Get(0))
	}
	if err != nil {
		w.Abort()
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := w.Finish(meta); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// RestoreOptions are etcdutl snapshot restore's options that change what is
// restored.
type RestoreOptions struct {
	SkipHashCheck bool
	// RevisionBump raises the revision by this much after the restore and,
	// with MarkCompacted, compacts at the new revision, so that clients
	// holding revisions of the old cluster relist rather than miss events.
	RevisionBump  int64
	MarkCompacted bool
	// MigrateToken, when set, restores the cluster in migration mode
	// (internal/migrate/mode): client writes are refused until the
	// cut-over. Only etcd snapshots can be followed.
	MigrateToken string
}

// Summary says what a restore brought in.
type Summary struct {
	Versions, Leases, Users, Roles, Alarms int
	Revision, CompactRevision              int64
	StorageVersion                         string
}

// attachBatchCount bounds the lease attachments one restore batch holds.
const attachBatchCount = 10000

// restoreEtcd imports the etcd backend file at path into eng, which must
// be empty.
func restoreEtcd(path string, eng storage.Engine, opts RestoreOptions) (Summary, error) {
	var sum Summary
	r, err := etcdsnap.Open(path, opts.SkipHashCheck)
	if err != nil {
		return sum, err
	}
	defer r.Close()
	sum.StorageVersion = r.Version.String()
	meta, err := r.Meta()
	if err != nil {
		return sum, err
	}
	leases, err := r.Leases()
	if err != nil {
		return sum, err
	}
	as, err := r.Auth()
	if err != nil {
		return sum, err
	}
	alarms, err := r.Alarms()
	if err != nil {
		return sum, err
	}
	im, err := mvcc.NewImporter(eng)
	if err != nil {
		return sum, err
	}
	defer im.Close()
	err = r.Versions(func(v mvcc.ImportedVersion) error {
		sum.Versions++
		if v.Main > sum.Revision {
			sum.Revision = v.Main
		}
		return im.Add(v)
	})
	if err != nil {
		return sum, err
	}
	rev := mvcc.Revisions{Current: sum.Revision, Compacted: meta.Finished, Scheduled: meta.Scheduled}
	if rev.Current < rev.Compacted {
		rev.Current = rev.Compacted
	}
	if rev.Current < rev.Scheduled {
		rev.Current = rev.Scheduled
	}
	if opts.RevisionBump > 0 {
		rev.Current += opts.RevisionBump
		if opts.MarkCompacted {
			rev.Scheduled = rev.Current
		}
	}
	b := eng.NewBatch()
	defer func() { _ = b.Close() }()
	errs := []error{auth.StageImport(b, as), alarm.StageImport(b, alarms), b.Set(storage.KeyRestored, nil)}
	if opts.MigrateToken != "" {
		errs = append(errs, mode.Stage(b, mode.Marker{Token: opts.MigrateToken, Revision: rev.Current}))
	}
	for _, l := range leases {
		errs = append(errs, lease.StageImport(b, l))
	}
	if err := errors.Join(errs...); err != nil {
		return sum, err
	}
	live := map[int64]bool{}
	for _, l := range leases {
		live[l.ID] = true
	}
	err = im.Finish(rev, func(id int64, key []byte) error {
		if !live[id] {
			// etcd too leaves a key whose lease is gone unattached.
			return nil
		}
		if err := lease.StageImportAttach(b, id, key); err != nil {
			return err
		}
		if b.Count() < attachBatchCount {
			return nil
		}
		// Bounded batches: a store may hold millions of leased keys.
		err := b.Commit(false)
		err = errors.Join(err, b.Close())
		b = eng.NewBatch()
		return err
	})
	if err != nil {
		return sum, err
	}
	if err := b.Commit(true); err != nil {
		return sum, fmt.Errorf("snapshot: commit leases and auth: %w", err)
	}
	sum.Revision, sum.CompactRevision = rev.Current, max(rev.Compacted, rev.Scheduled)
	sum.Leases, sum.Users, sum.Roles, sum.Alarms = len(leases), len(as.Users), len(as.Roles), len(alarms)
	return sum, nil
}
