package server

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/metastore/metastore/internal/alarm"
	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/member/bootstrap"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/memsize"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/raftsnap"
	"github.com/metastore/metastore/internal/snapshot"
	"github.com/metastore/metastore/internal/storage/memory"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
	"github.com/metastore/metastore/internal/txn"
	"github.com/metastore/metastore/internal/watch"
)

// openStorage opens the engine and every store that reads it, after
// finishing an interrupted snapshot installation and, with
// --force-new-cluster, rewriting the Raft log.
func (s *Server) openStorage() error {
	if s.cfg.Storage.MemoryMlock {
		if err := memsize.LockMemory(); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	switch s.cfg.Storage.Engine {
	case config.EngineMemory:
		s.eng = memory.New()
	default:
		dir := filepath.Join(s.cfg.Member.DataDir, "member", "pebble")
		if err := snapshot.PrepareMemberDir(filepath.Dir(dir)); err != nil {
			return fmt.Errorf("server: %w", err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("server: create data dir %s: %w", dir, err)
		}
		eng, err := pebbleengine.Open(dir, memsize.PebbleSizes(s.cfg.Limits, pebbleengine.Options{NoSync: s.cfg.Storage.UnsafeNoFsync, WALDir: s.cfg.Member.WALDir, Logger: s.lg.Named("pebble")}))
		if err != nil {
			return fmt.Errorf("server: open storage: %w", err)
		}
		s.eng = eng
	}
	// An installation of a leader's snapshot that a crash interrupted is
	// completed before anything reads the engine.
	snapDir := filepath.Join(s.cfg.Member.DataDir, "member", "raftsnap")
	installed, err := raftsnap.Recover(s.eng, snapDir)
	if err != nil {
		return fmt.Errorf("server: recover snapshot installation: %w", err)
	}
	if installed {
		s.lg.Warn("completed a snapshot installation interrupted by a crash")
	}
	s.snapRecv = raftsnap.NewReceiver(s.eng, snapDir)
	if s.cfg.Cluster.ForceNewCluster {
		if err := bootstrap.ForceNewCluster(s.eng, s.cfg.Member.DataDir, s.lg.Named("bootstrap")); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	if s.raftLog, err = raftlog.Open(s.eng); err != nil {
		return fmt.Errorf("server: open raft log: %w", err)
	}
	if s.cfg.Testing.RetainRaftLog {
		s.lg.Warn("TESTING: trimmed Raft log entries are kept for replay (" + EnvRetainRaftLog + ")")
		s.raftLog.RetainTrimmed()
	}
	if s.members, err = membership.Load(s.eng); err != nil {
		return fmt.Errorf("server: load members: %w", err)
	}
	if s.store, err = mvcc.Open(s.eng, s.lg.Named("mvcc"),
		mvcc.WithCompactionBatchLimit(s.cfg.Quota.CompactionBatchLimit),
		mvcc.WithCompactionSleepInterval(s.cfg.Quota.CompactionSleepInterval),
		mvcc.WithLatestCacheBytes(s.cfg.Limits.StorageKeyCacheBytes)); err != nil {
		return fmt.Errorf("server: open mvcc: %w", err)
	}
	if s.alarms, err = alarm.Load(s.eng); err != nil {
		return fmt.Errorf("server: load alarms: %w", err)
	}
	if err := s.openAuth(); err != nil {
		return err
	}
	if s.lessor, err = lease.New(lease.Config{
		Engine:               s.eng,
		ElectionTimeout:      s.cfg.Raft.ElectionTimeout,
		ExpiredRetryInterval: s.requestTimeout(),
		Logger:               s.lg.Named("lease"),
	}); err != nil {
		return fmt.Errorf("server: open leases: %w", err)
	}
	s.exec = txn.New(s.store, s.lessor, s.lg.Named("txn"), txn.WithMaxRequestBytes(int(s.cfg.GRPC.MaxRequestBytes)))
	// Apply publishes committed events to the hub and returns at once;
	// watchers that fall behind catch up from the store's history.
	s.hub = watch.NewHub(s.store, s.lg.Named("watch"), watch.Options{})
	s.store.OnCommit(s.hub.Notify)
	return nil
}
