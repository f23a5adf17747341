package server

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/raft/v3/tracker"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errLeaderTransferTimeout is etcd's ErrTimeoutLeaderTransfer as its gRPC
// layer sends it: the error is not in etcd's gRPC error table, so it goes
// out with codes.Unknown and its message.
var errLeaderTransferTimeout = status.Error(codes.Unknown, "etcdserver: request timed out, leader transfer took too long")

// moveLeader hands leadership to target and returns once target leads, as
// etcd's MoveLeader does: a caller (etcdctl move-leader, the shutdown
// hand-off) that sees success can rely on the new leader being in place.
// It fails with etcd's "leader transfer took too long" when ctx ends first
// (raft aborts a transfer the transferee does not complete within an
// election timeout, so the wait also ends when the transfer was dropped).
func (s *Server) moveLeader(ctx context.Context, target uint64) error {
	start := time.Now()
	s.lg.Info("leadership transfer starting",
		zap.String("local-member-id", fmt.Sprintf("%x", s.memberID)),
		zap.String("transferee-member-id", fmt.Sprintf("%x", target)))
	s.node.TransferLeadership(ctx, target)
	for {
		// Take the channel before reading the leader, so a change between
		// the two still wakes the wait.
		changed := s.node.LeaderChanged()
		if s.node.Leader() == target {
			break
		}
		select {
		case <-ctx.Done():
			s.lg.Warn("leadership transfer took too long",
				zap.String("transferee-member-id", fmt.Sprintf("%x", target)), zap.Duration("took", time.Since(start)))
			return errLeaderTransferTimeout
		case <-changed:
		}
	}
	s.lg.Info("leadership transfer finished",
		zap.String("old-leader-member-id", fmt.Sprintf("%x", s.memberID)),
		zap.String("new-leader-member-id", fmt.Sprintf("%x", target)),
		zap.Duration("took", time.Since(start)))
	return nil
}

// transferLeadershipOnShutdown runs before raft stops: a leader that stops
// gracefully first hands leadership to its most up-to-date voting follower,
// so the cluster does not sit out an election timeout (and the writes it
// would time out) during a rolling restart. It is skipped when this member
// does not lead, is the only voter, or no voter is reachable; it is bounded
// by ctx (the shutdown phase) and two election timeouts.
func (s *Server) transferLeadershipOnShutdown(ctx context.Context) {
	if s.node == nil || !s.node.IsLeader() {
		return
	}
	target, ok := s.transferee()
	if !ok {
		s.lg.Info("skipped leadership transfer; no voting follower to hand it to",
			zap.String("local-member-id", fmt.Sprintf("%x", s.memberID)))
		return
	}
	// Raft drops a transfer the transferee has not completed within an
	// election timeout (it may be stopping too: members of a cluster are
	// often stopped together), so waiting longer than two only delays the
	// stop.
	ctx, cancel := context.WithTimeout(ctx, min(s.requestTimeout(), 2*s.cfg.Raft.ElectionTimeout))
	defer cancel()
	if err := s.moveLeader(ctx, target); err != nil {
		s.lg.Warn("leadership transfer on shutdown failed", zap.Error(err))
	}
}

// transferee picks the voting follower with the longest matched log among
// the recently active ones whose peer connection is up (a follower stopped
// a moment ago can still count as recently active to raft): it needs the
// fewest appends before raft can tell it to campaign.
func (s *Server) transferee() (uint64, bool) {
	st := s.node.Status()
	var best uint64
	var bestMatch uint64
	for id, pr := range st.Progress {
		if id == s.memberID || pr.IsLearner || !pr.RecentActive || pr.State == tracker.StateSnapshot || !s.transport.IsActive(id) {
			continue
		}
		if best == 0 || pr.Match > bestMatch {
			best, bestMatch = id, pr.Match
		}
	}
	return best, best != 0
}
