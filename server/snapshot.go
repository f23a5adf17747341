package server

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/snapshot"
)

// engineDir is where a data dir keeps the Pebble engine.
func engineDir(dataDir string) string { return filepath.Join(dataDir, "member", "pebble") }

// Snapshot implements rpc.MaintenanceBackend (etcdctl snapshot save): a
// checkpoint of the engine, packed as a stream, in the data dir (or the
// temporary dir for the memory engine).
func (s *Server) Snapshot(ctx context.Context) (io.ReadCloser, int64, error) {
	parent := os.TempDir()
	if s.cfg.Storage.Engine != config.EngineMemory {
		parent = filepath.Join(s.cfg.Member.DataDir, "member")
	}
	r, size, err := snapshot.Save(ctx, s.eng, parent)
	if err != nil {
		return nil, 0, err
	}
	s.lg.Info("sending snapshot", zap.Int64("bytes", size))
	return r, size, nil
}

// RestoreSnapshot turns a snapshot file saved with `etcdctl snapshot save`
// into a data directory for a new cluster (`metastore snapshot restore`);
// see snapshot.Restore.
func RestoreSnapshot(file, dataDir string) error {
	return snapshot.Restore(file, dataDir, engineDir(dataDir))
}
