package server

import (
	"context"
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/compactor"
	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/mvcc"
)

// startAutoCompaction runs --auto-compaction-mode/--auto-compaction-retention.
func (s *Server) startAutoCompaction() {
	q := s.cfg.Quota
	var c compactor.Config
	switch {
	case q.AutoCompactionMode == config.CompactionModeRevision && q.AutoCompactionRevisions > 0:
		c = compactor.Config{Mode: "revision", Revisions: q.AutoCompactionRevisions}
	case q.AutoCompactionMode == config.CompactionModePeriodic && q.AutoCompactionPeriod > 0:
		c = compactor.Config{Mode: "periodic", Period: q.AutoCompactionPeriod}
	default:
		return
	}
	c.Logger = s.lg.Named("auto-compaction")
	c.IsCompacted = func(err error) bool { return errors.Is(err, mvcc.ErrCompacted) }
	interval := compactor.Interval(c.Mode, c.Period)
	s.lg.Info("auto compaction enabled", zap.String("mode", c.Mode), zap.Duration("period", c.Period),
		zap.Int64("revisions", c.Revisions), zap.Duration("check-interval", interval))
	s.rel.supervisor.Go("auto-compaction", func(ctx context.Context) {
		t := time.NewTicker(interval)
		defer t.Stop()
		c.Tick = t.C
		compactor.Run(ctx, c, compactTarget{s})
	})
}

type compactTarget struct{ s *Server }

func (t compactTarget) Rev() int64     { return t.s.store.Rev() }
func (t compactTarget) IsLeader() bool { return t.s.node.IsLeader() }
func (t compactTarget) Compact(ctx context.Context, rev int64) error {
	_, err := t.s.backend.Compact(ctx, &pb.CompactionRequest{Revision: rev})
	return err
}
