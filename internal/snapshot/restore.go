package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
)

// Save packs a checkpoint of eng (hard links on Pebble, so it is cheap and
// does not stop writes) taken in a temporary directory under parent; the
// checkpoint is removed when the stream is closed.
func Save(_ context.Context, eng storage.Engine, parent string) (io.ReadCloser, int64, error) {
	tmp, err := os.MkdirTemp(parent, "snapshot-")
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot: temporary dir: %w", err)
	}
	dir := filepath.Join(tmp, "db")
	if err := eng.Checkpoint(dir); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, 0, fmt.Errorf("snapshot: checkpoint: %w", err)
	}
	r, size, err := Pack(dir)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, 0, err
	}
	return &removeOnClose{ReadCloser: r, dir: tmp}, size, nil
}

type removeOnClose struct {
	io.ReadCloser
	dir string
}

func (r *removeOnClose) Close() error {
	return errors.Join(r.ReadCloser.Close(), os.RemoveAll(r.dir))
}

// Restore turns a snapshot file saved with `etcdctl snapshot save` into a
// data directory for a new cluster, with the Pebble engine in engineDir
// (inside dataDir): the MVCC data, leases and their revisions are kept;
// the Raft log, the member list, the member and cluster IDs and the alarms
// are dropped, so the member bootstraps a fresh cluster from its
// --initial-cluster flags, as after `etcdutl snapshot restore`.
func Restore(file, dataDir, engineDir string) error {
	if entries, err := os.ReadDir(dataDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("restore: data dir %s is not empty", dataDir)
	}
	if err := Unpack(file, engineDir); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if _, err := os.Stat(filepath.Join(engineDir, memory.CheckpointFile)); err == nil {
		_ = os.RemoveAll(dataDir)
		return errors.New("restore: the snapshot was taken from a --storage-engine=memory member and cannot seed a data dir")
	}
	eng, err := pebbleengine.Open(engineDir, pebbleengine.Options{})
	if err != nil {
		return fmt.Errorf("restore: open restored data: %w", err)
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
	if err := errors.Join(errs...); err != nil {
		_ = b.Close()
		_ = eng.Close()
		return fmt.Errorf("restore: reset cluster identity: %w", err)
	}
	errs = append(errs, b.Commit(true), b.Close(), eng.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restore: reset cluster identity: %w", err)
	}
	return nil
}
