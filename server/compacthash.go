package server

import (
	"context"
	"time"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/corruption"
)

// startCompactHashCheck runs etcd's compaction hash check on the leader
// when --feature-gates=CompactHashCheck=true, every
// --compact-hash-check-time (internal/corruption.CompactChecker).
func (s *Server) startCompactHashCheck() {
	if !s.cfg.Features.Enabled(config.FeatureCompactHashCheck) {
		return
	}
	c := corruption.NewCompactChecker(corruptionTarget{s}, s.lg.Named("compact-hash-check"))
	s.superviseEvery("compact-hash-check", s.cfg.Ops.CompactHashCheckTime, func(ctx context.Context, tick <-chan time.Time) {
		c.Run(ctx, tick)
	})
}

// CompactRev completes corruptionTarget for the compaction hash check.
func (t corruptionTarget) CompactRev() int64 { return t.s.store.CompactRev() }
