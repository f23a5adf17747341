package server

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/snapshot"
)

// Snapshot implements rpc.MaintenanceBackend: a point-in-time copy of the
// engine written as an etcd backend file, so that etcdutl reads it (see
// internal/snapshot.Export). The file is removed when the stream is closed.
func (s *Server) Snapshot(context.Context) (io.ReadCloser, int64, error) {
	parent := os.TempDir()
	if s.cfg.Storage.Engine != config.EngineMemory {
		parent = filepath.Join(s.cfg.Member.DataDir, "member")
	}
	r, size, err := snapshot.Export(s.eng, parent)
	if err != nil {
		return nil, 0, fmt.Errorf("server: %w", err)
	}
	s.lg.Info("sending snapshot", zap.Int64("bytes", size))
	return r, size, nil
}

// engineDir is where a data dir keeps the Pebble engine.
func engineDir(dataDir string) string { return filepath.Join(dataDir, "member", "pebble") }
