package reconfig

import (
	"context"
	"time"

	"go.etcd.io/raft/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/membership"
)

const (
	// HealthInterval is how long every peer must have been reachable for
	// a strict reconfiguration check to pass (etcd's HealthInterval).
	HealthInterval = 5 * time.Second
	// learnerReadyPercent is how close to the leader's log a learner must
	// be to be promoted (etcd's readyPercentThreshold).
	learnerReadyPercent = 0.9
)

// Policy is etcd's decision whether to propose a membership change at all;
// the change itself is validated again by every member when it is applied
// (membership.Validate). It reads only what it is given, so a test can
// drive it with simulated members (internal/simcluster).
type Policy struct {
	Self    uint64
	Members *membership.Store
	// Status is the local raft status: the leader's has every member's
	// progress, a follower's none.
	Status func() raft.Status
	// ActiveSince is since when peer id has been reachable (zero: not now).
	ActiveSince func(id uint64) time.Time
	// Barrier waits until the local state caught up with the commit index.
	Barrier             func(ctx context.Context) error
	StrictReconfigCheck bool
	Now                 func() time.Time
	Logger              *zap.Logger
}

// CheckAdd is the policy of AddMember: with --strict-reconfig-check, a
// voter may be added only when every voter has started, and any member only
// when every voter has been reachable for HealthInterval.
func (p *Policy) CheckAdd(isLearner bool) error {
	if !p.StrictReconfigCheck {
		return nil
	}
	if !isLearner && !p.Members.ReadyToAddVoter() {
		return membership.ErrNotEnoughStarted
	}
	if !p.connectedFullySince(p.Now().Add(-HealthInterval)) {
		return membership.ErrUnhealthy
	}
	return nil
}

// CheckRemove is the policy of RemoveMember (etcd's mayRemoveMember under
// --strict-reconfig-check): removing a voter must leave a quorum of the
// remaining voters among those reachable now.
func (p *Policy) CheckRemove(id uint64) error {
	if !p.StrictReconfigCheck {
		return nil
	}
	if m := p.Members.Member(id); m != nil && m.IsLearner {
		return nil // a learner is no part of any quorum
	}
	if !p.Members.ReadyToRemoveVoter(id) {
		return membership.ErrNotEnoughStarted
	}
	// A member that is down is no part of the active quorum either.
	if id != p.Self && p.ActiveSince(id).IsZero() {
		return nil
	}
	voters := p.voters()
	since := p.Now().Add(-HealthInterval)
	active := 0
	for _, v := range voters {
		if v == p.Self || p.connectedSince(v, since) {
			active++
		}
	}
	if !quorumAfterRemoval(len(voters), active) {
		// Say which peers were missing: the operator's next step (and a
		// test's diagnosis) depends on it.
		var inactive []string
		for _, v := range voters {
			if v != p.Self && !p.connectedSince(v, since) {
				inactive = append(inactive, idHex(v)+" active-since="+formatSince(p.ActiveSince(v)))
			}
		}
		p.logger().Warn("rejecting a member removal: it would leave fewer than a quorum of the remaining voters reachable for the health interval",
			zap.String("member-id", idHex(id)), zap.Int("voters", len(voters)), zap.Int("active", active),
			zap.Strings("not-active-long-enough", inactive), zap.Duration("required", HealthInterval))
		return membership.ErrUnhealthy
	}
	return nil
}

// quorumAfterRemoval says whether removing one active voter out of voters
// leaves at least a quorum of the remaining voters active.
func quorumAfterRemoval(voters, active int) bool {
	return active-1 >= 1+(voters-1)/2
}

// CheckPromote is the policy of PromoteMember, which only the leader can
// apply: the learner's log must be within 90% of the leader's (etcd's
// isLearnerReady), and with --strict-reconfig-check every voter must have
// started. A follower gets membership.ErrNotLeader.
func (p *Policy) CheckPromote(ctx context.Context, id uint64) error {
	// etcd first waits for the local state to catch up with the commit.
	if err := p.Barrier(ctx); err != nil {
		return err
	}
	st := p.Status()
	if st.Progress == nil {
		return membership.ErrNotLeader
	}
	pr, ok := st.Progress[id]
	if !ok {
		return membership.ErrIDNotFound
	}
	if float64(pr.Match) < float64(st.Progress[p.Self].Match)*learnerReadyPercent {
		return membership.ErrLearnerNotReady
	}
	if p.StrictReconfigCheck && !p.Members.ReadyToPromote(id) {
		return membership.ErrNotEnoughStarted
	}
	return nil
}

func (p *Policy) logger() *zap.Logger {
	if p.Logger == nil {
		return zap.NewNop()
	}
	return p.Logger
}

func (p *Policy) voters() []uint64 {
	var out []uint64
	for _, m := range p.Members.Members() {
		if !m.IsLearner {
			out = append(out, m.ID)
		}
	}
	return out
}

func (p *Policy) connectedSince(id uint64, since time.Time) bool {
	t := p.ActiveSince(id)
	return !t.IsZero() && !t.After(since)
}

// connectedFullySince is etcd's isConnectedFullySince over the voters.
func (p *Policy) connectedFullySince(since time.Time) bool {
	for _, id := range p.voters() {
		if id != p.Self && !p.connectedSince(id, since) {
			p.logger().Warn("rejecting a membership change: a voting member has not been reachable long enough",
				zap.String("member-id", idHex(id)), zap.Time("active-since", p.ActiveSince(id)), zap.Duration("required", HealthInterval))
			return false
		}
	}
	return true
}

func formatSince(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
