package snapshot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
)

// Format is the kind of a snapshot file.
type Format int

// The snapshot formats Restore reads.
const (
	// FormatEtcd is etcd's bbolt backend: what etcd's and, since the
	// migration work, metastore's Maintenance.Snapshot stream.
	FormatEtcd Format = iota
	// FormatArchive is the tar archive of a Pebble checkpoint earlier
	// metastore versions streamed.
	FormatArchive
)

func (f Format) String() string {
	if f == FormatArchive {
		return "metastore archive"
	}
	return "etcd backend"
}

// DetectFormat tells the two formats apart by the tar header's "ustar"
// magic at offset 257; anything else is read as an etcd backend, whose
// reader reports what is wrong with it.
func DetectFormat(path string) (Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	hdr := make([]byte, 263)
	n, err := io.ReadFull(f, hdr)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("snapshot: read %s: %w", path, err)
	}
	if n == len(hdr) && string(hdr[257:262]) == "ustar" {
		return FormatArchive, nil
	}
	return FormatEtcd, nil
}

// Restore turns a snapshot file (either format) into the data directory of a
// new cluster, as `etcdutl snapshot restore` does for etcd: the MVCC history
// with its revisions, the compaction revision, leases, auth and alarms are
// kept; the Raft log, the member list and the member and cluster IDs are
// not, so the member bootstraps a new cluster from its --initial-cluster
// flags. dataDir must not exist or be empty; on failure nothing is left in
// it.
func Restore(file, dataDir string, opts RestoreOptions) (Summary, error) {
	var sum Summary
	if entries, err := os.ReadDir(dataDir); err == nil && len(entries) > 0 {
		return sum, fmt.Errorf("data-dir %q not empty", dataDir)
	}
	if _, err := os.Stat(file); err != nil {
		return sum, fmt.Errorf("snapshot: %w", err)
	}
	format, err := DetectFormat(file)
	if err != nil {
		return sum, err
	}
	if format == FormatArchive && opts.MigrateToken != "" {
		return sum, errors.New("snapshot: a migration (--migrate-token) needs an etcd snapshot")
	}
	// Build the engine under another name and rename it into place at the
	// end: a restore cut short (a crash, a full disk) never leaves a
	// member/pebble that a member would start on and serve half the data.
	dir := filepath.Join(dataDir, "member", "pebble")
	tmp := dir + ".restoring"
	if format == FormatArchive {
		err = restoreArchive(file, tmp)
	} else {
		sum, err = restoreEtcdInto(file, tmp, opts)
	}
	if err == nil {
		err = renameSynced(tmp, dir)
	}
	if err != nil {
		_ = os.RemoveAll(dataDir)
		return sum, err
	}
	return sum, nil
}

// renameSynced renames from to to and syncs their directory, so that the
// rename is durable when Restore returns.
func renameSynced(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	d, err := os.Open(filepath.Dir(to))
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("snapshot: sync %s: %w", filepath.Dir(to), err)
	}
	return nil
}

func restoreEtcdInto(file, dir string, opts RestoreOptions) (Summary, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return Summary{}, fmt.Errorf("snapshot: %w", err)
	}
	eng, err := pebbleengine.Open(dir, pebbleengine.Options{})
	if err != nil {
		return Summary{}, fmt.Errorf("snapshot: open %s: %w", dir, err)
	}
	sum, err := restoreEtcd(file, eng, opts)
	return sum, errors.Join(err, eng.Close())
}

// restoreArchive unpacks a metastore archive and drops what belongs to the
// old cluster.
func restoreArchive(file, dir string) error {
	if err := Unpack(file, dir); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, memory.CheckpointFile)); err == nil {
		return errors.New("snapshot: the archive was taken from a --storage-engine=memory member and cannot seed a data dir")
	}
	eng, err := pebbleengine.Open(dir, pebbleengine.Options{})
	if err != nil {
		return fmt.Errorf("snapshot: open restored data: %w", err)
	}
	b := eng.NewBatch()
	var errs []error
	for _, p := range [][]byte{storage.PrefixRaftEntry, storage.PrefixMembership, storage.PrefixAlarm} {
		errs = append(errs, b.DeleteRange(p, storage.PrefixEnd(p)))
	}
	for _, k := range [][]byte{storage.KeyRaftHardState, storage.KeyRaftSnapshot, storage.KeyRaftConfState,
		storage.KeyAppliedIndex, storage.KeyMemberID, storage.KeyClusterID} {
		errs = append(errs, b.Delete(k))
	}
	errs = append(errs, b.Set(storage.KeyRestored, nil))
	if err := errors.Join(errs...); err != nil {
		_ = b.Close()
		_ = eng.Close()
		return fmt.Errorf("snapshot: reset cluster identity: %w", err)
	}
	errs = append(errs, b.Commit(true), b.Close(), eng.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("snapshot: reset cluster identity: %w", err)
	}
	return nil
}

// PrepareMemberDir is called by a member before it opens its engine in
// memberDir (<data-dir>/member). It removes the scratch copies of snapshots
// a crash left behind (Export removes its own when the stream closes), and
// refuses a data dir whose restore was interrupted, which would otherwise
// start as an empty new member.
func PrepareMemberDir(memberDir string) error {
	if _, err := os.Stat(filepath.Join(memberDir, "pebble.restoring")); err == nil {
		return fmt.Errorf("snapshot: %s holds an interrupted `metastore snapshot restore`: remove the data dir and restore again", filepath.Dir(memberDir))
	}
	stale, err := filepath.Glob(filepath.Join(memberDir, scratchPrefix+"*"))
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	for _, d := range stale {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("snapshot: remove stale snapshot copy: %w", err)
		}
	}
	return nil
}
