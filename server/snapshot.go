package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/snapshot"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
)

// Snapshot implements rpc.MaintenanceBackend: a checkpoint of the engine
// (hard links for Pebble, so it is cheap and does not stop writes), packed
// as a stream. The checkpoint is removed when the stream is closed.
func (s *Server) Snapshot(context.Context) (io.ReadCloser, int64, error) {
	parent := os.TempDir()
	if s.cfg.Storage.Engine != config.EngineMemory {
		parent = filepath.Join(s.cfg.Member.DataDir, "member")
	}
	tmp, err := os.MkdirTemp(parent, "snapshot-")
	if err != nil {
		return nil, 0, fmt.Errorf("server: snapshot dir: %w", err)
	}
	dir := filepath.Join(tmp, "db")
	if err := s.eng.Checkpoint(dir); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, 0, fmt.Errorf("server: checkpoint: %w", err)
	}
	r, size, err := snapshot.Pack(dir)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, 0, err
	}
	s.lg.Info("sending snapshot", zap.Int64("bytes", size))
	return &removeOnClose{ReadCloser: r, dir: tmp}, size, nil
}

type removeOnClose struct {
	io.ReadCloser
	dir string
}

func (r *removeOnClose) Close() error {
	return errors.Join(r.ReadCloser.Close(), os.RemoveAll(r.dir))
}

// RestoreSnapshot turns a snapshot file saved with `etcdctl snapshot save`
// into a data directory for a new cluster: the MVCC data, leases and their
// revisions are kept; the Raft log, the member list, the member and cluster
// IDs and the alarms are dropped, so the member bootstraps a fresh cluster
// from its --initial-cluster flags, as after `etcdutl snapshot restore`.
func RestoreSnapshot(file, dataDir string) error {
	if entries, err := os.ReadDir(dataDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("restore: data dir %s is not empty", dataDir)
	}
	dir := filepath.Join(dataDir, "member", "pebble")
	if err := snapshot.Unpack(file, dir); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, memory.CheckpointFile)); err == nil {
		_ = os.RemoveAll(dataDir)
		return errors.New("restore: the snapshot was taken from a --storage-engine=memory member and cannot seed a data dir")
	}
	eng, err := pebbleengine.Open(dir, pebbleengine.Options{})
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
