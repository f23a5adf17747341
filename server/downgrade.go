package server

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/backend"
	"github.com/metastore/metastore/internal/downgrade"
)

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
