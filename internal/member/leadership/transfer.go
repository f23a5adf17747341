package leadership

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/membership"
)

// ErrTransferTimeout is etcd's ErrTimeoutLeaderTransfer as its gRPC layer
// sends it: the error is not in etcd's gRPC error table, so it goes out
// with codes.Unknown and its message.
var ErrTransferTimeout = status.Error(codes.Unknown, "etcdserver: request timed out, leader transfer took too long")

// Raft is the member's raft node.
type Raft interface {
	IsLeader() bool
	Leader() uint64
	// LeaderChanged returns a channel closed at the next leader change.
	LeaderChanged() <-chan struct{}
	TransferLeadership(ctx context.Context, target uint64)
	Status() raft.Status
}

// Peers tells whether the connection to a peer is up now.
type Peers interface {
	IsActive(id uint64) bool
}

// Members is the replicated member list.
type Members interface {
	Member(id uint64) *membership.Member
}

// Config wires a Mover.
type Config struct {
	Self    uint64
	Raft    Raft
	Peers   Peers
	Members Members
	// RequestTimeout bounds MoveLeader (etcd's ReqTimeout).
	RequestTimeout time.Duration
	// ElectionTimeout bounds the hand-off on shutdown: raft drops a
	// transfer the transferee has not completed within one.
	ElectionTimeout time.Duration
	Logger          *zap.Logger
}

// Mover moves leadership away from this member. Its methods are safe for
// concurrent use.
type Mover struct {
	cfg Config
	lg  *zap.Logger
}

// New returns a Mover.
func New(cfg Config) *Mover {
	lg := cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	return &Mover{cfg: cfg, lg: lg}
}

// MoveLeader is etcd's Maintenance.MoveLeader: only the leader may move
// leadership (ErrGRPCNotLeader), moving it to itself succeeds at once,
// and the target must be a voting member (ErrGRPCBadLeaderTransferee).
func (m *Mover) MoveLeader(ctx context.Context, target uint64) error {
	if !m.cfg.Raft.IsLeader() {
		return rpctypes.ErrGRPCNotLeader
	}
	if target == m.cfg.Self {
		return nil
	}
	if mb := m.cfg.Members.Member(target); mb == nil || mb.IsLearner {
		return rpctypes.ErrGRPCBadLeaderTransferee
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	return m.move(ctx, target)
}

// HandOff runs before raft stops: a leader that stops gracefully first
// hands leadership to Transferee's choice. It is skipped when this member
// does not lead or no voting follower is reachable; it waits at most two
// election timeouts (the transferee may be stopping too: members of a
// cluster are often stopped together, and waiting longer only delays the
// stop) and never longer than ctx.
func (m *Mover) HandOff(ctx context.Context) {
	if !m.cfg.Raft.IsLeader() {
		return
	}
	target, ok := Transferee(m.cfg.Raft.Status(), m.cfg.Self, m.cfg.Peers.IsActive)
	if !ok {
		m.lg.Info("skipped leadership transfer; no voting follower to hand it to",
			zap.String("local-member-id", fmt.Sprintf("%x", m.cfg.Self)))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, min(m.cfg.RequestTimeout, 2*m.cfg.ElectionTimeout))
	defer cancel()
	if err := m.move(ctx, target); err != nil {
		m.lg.Warn("leadership transfer on shutdown failed", zap.Error(err))
	}
}

// Transferee picks, from the leader self's raft status, the voting
// follower with the longest matched log among the recently active ones
// whose peer connection is up (a follower stopped a moment ago can still
// count as recently active to raft): it needs the fewest appends before
// raft can tell it to campaign. A follower being sent a snapshot is
// passed over. Ties go to the lower ID, so the choice does not depend on
// map order.
func Transferee(st raft.Status, self uint64, active func(id uint64) bool) (uint64, bool) {
	var best, bestMatch uint64
	for id, pr := range st.Progress {
		if id == self || pr.IsLearner || !pr.RecentActive || pr.State == tracker.StateSnapshot || !active(id) {
			continue
		}
		if best == 0 || pr.Match > bestMatch || (pr.Match == bestMatch && id < best) {
			best, bestMatch = id, pr.Match
		}
	}
	return best, best != 0
}

// move hands leadership to target and returns once target leads, as etcd's
// MoveLeader does: a caller that sees success can rely on the new leader
// being in place. It fails with ErrTransferTimeout when ctx ends first
// (raft aborts a transfer the transferee does not complete within an
// election timeout, so the wait also ends when the transfer was dropped).
func (m *Mover) move(ctx context.Context, target uint64) error {
	start := time.Now()
	m.lg.Info("leadership transfer starting",
		zap.String("local-member-id", fmt.Sprintf("%x", m.cfg.Self)),
		zap.String("transferee-member-id", fmt.Sprintf("%x", target)))
	m.cfg.Raft.TransferLeadership(ctx, target)
	for {
		// Take the channel before reading the leader, so a change between
		// the two still wakes the wait.
		changed := m.cfg.Raft.LeaderChanged()
		if m.cfg.Raft.Leader() == target {
			break
		}
		select {
		case <-ctx.Done():
			m.lg.Warn("leadership transfer took too long",
				zap.String("transferee-member-id", fmt.Sprintf("%x", target)), zap.Duration("took", time.Since(start)))
			return ErrTransferTimeout
		case <-changed:
		}
	}
	m.lg.Info("leadership transfer finished",
		zap.String("old-leader-member-id", fmt.Sprintf("%x", m.cfg.Self)),
		zap.String("new-leader-member-id", fmt.Sprintf("%x", target)),
		zap.Duration("took", time.Since(start)))
	return nil
}
