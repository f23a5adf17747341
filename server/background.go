package server

import (
	"context"
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/backend"
	"github.com/metastore/metastore/internal/compactor"
	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/corruption"
	"github.com/metastore/metastore/internal/downgrade"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/rpc"
)

// The background loops, each supervised (internal/lifecycle.Supervisor):
// what runs them is in the package named next to each.

// startBackground starts the supervised loops and health checks, once the
// server's components exist.
func (s *Server) startBackground() {
	r := s.rel
	m := r.metrics
	m.SetServerID(s.memberID)
	// Show the common validation failures at 0 from the start, so an alert
	// on their rate has a series to work with.
	for _, e := range []error{rpctypes.ErrGRPCEmptyKey, rpctypes.ErrGRPCTooManyOps, rpctypes.ErrGRPCDuplicateKey, rpctypes.ErrGRPCRequestTooLarge} {
		m.ValidationErrors.WithLabelValues(rpc.ValidationReason(e))
	}
	for _, c := range s.probe.Checkers(s.eng, s.Err) {
		r.health.Register(c)
	}
	r.health.Evaluate(context.Background())
	r.supervisor.Go("health-checker", r.health.Run)
	r.supervisor.Go("memory-sampler", r.limiter.Run)
	r.supervisor.Go("lease-expiry", s.backend.RunLeaseExpiry)
	r.supervisor.Go("leader-monitor", r.leader.Run)
	s.startAutoCompaction()
	s.startCorruptionCheck()
	s.startDowngradeMonitor()
	s.startCompactHashCheck()
	r.grpcMet.InitializeMetrics(s.grpcSrv)
}

// startDowngradeMonitor runs etcd's --downgrade-check-time loop.
func (s *Server) startDowngradeMonitor() {
	lg := s.lg.Named("downgrade")
	s.superviseEvery("downgrade-monitor", s.cfg.Ops.DowngradeCheckTime, func(ctx context.Context, tick <-chan time.Time) {
		downgrade.Monitor(ctx, tick, downgrade.NewMemberCluster(downgrade.MemberConfig{
			Self: s.memberID, IsLeader: s.node.IsLeader, State: s.eng, Members: s.members,
			Peers: s.transport, Proposer: proposer{s.backend},
		}), lg)
	})
}

// superviseEvery runs loop under the supervisor with a ticker of period d;
// d <= 0 turns the loop off.
func (s *Server) superviseEvery(name string, d time.Duration, loop func(ctx context.Context, tick <-chan time.Time)) {
	if d <= 0 {
		return
	}
	s.rel.supervisor.Go(name, func(ctx context.Context) {
		t := time.NewTicker(d)
		defer t.Stop()
		loop(ctx, t.C)
	})
}

// proposer is the backend as internal/downgrade proposes through it: the
// applied request's own error is the outcome.
type proposer struct{ *backend.Backend }

func (p proposer) Propose(ctx context.Context, r *pb.InternalRaftRequest) error {
	res, err := p.Backend.Propose(ctx, r)
	if err != nil {
		return err
	}
	return res.Err
}

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
