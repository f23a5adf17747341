package reconfig

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/backend"
	"github.com/metastore/metastore/internal/membership"
)

const (
	// HealthInterval is how long every peer must have been reachable for
	// a strict reconfiguration check to pass (etcd's HealthInterval).
	HealthInterval = 5 * time.Second
	// learnerReadyPercent is how close to the leader's log a learner must
	// be to be promoted (etcd's readyPercentThreshold).
	learnerReadyPercent = 0.9
	// confChangeRetry is how long configure waits for a proposed change
	// before proposing it again: raft's leader turns a conf change into an
	// empty entry while an earlier one is not applied yet on it, and
	// nothing tells the proposer. Proposing twice is harmless: the second
	// application fails validation (the ID exists, was removed, is no
	// learner any more) and only the first outcome reaches the waiter.
	confChangeRetry = time.Second
)

// Node is the local raft node.
type Node interface {
	Leader() uint64
	Status() raft.Status
	ProposeConfChange(ctx context.Context, cc raftpb.ConfChangeI) error
	Done() <-chan struct{}
}

// Backend gives proposals their IDs and waits for the local state to catch
// up with the commit index.
type Backend interface {
	NextID() uint64
	LinearizableBarrier(ctx context.Context) error
}

// Peers is the transport: since when each peer has been reachable, and
// calls on a peer's listener.
type Peers interface {
	ActiveSince(id uint64) time.Time
	Do(ctx context.Context, id uint64, method, path string, body []byte) (*http.Response, error)
}

// Config wires a Reconfigurer.
type Config struct {
	Self    uint64
	Members *membership.Store
	Node    Node
	Backend Backend
	Peers   Peers
	// Wait is the applier's: the outcome of an applied conf change
	// reaches the proposer through it.
	Wait *apply.Wait
	// StrictReconfigCheck is --strict-reconfig-check.
	StrictReconfigCheck bool
	RequestTimeout      time.Duration
	// Now is the clock of the reachability checks; nil means time.Now.
	Now    func() time.Time
	Logger *zap.Logger
}

// Reconfigurer implements the membership calls of etcd's Cluster service
// on one member. Its methods are safe for concurrent use.
type Reconfigurer struct {
	cfg Config
	lg  *zap.Logger
}

// New returns a Reconfigurer.
func New(cfg Config) *Reconfigurer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Reconfigurer{cfg: cfg, lg: cfg.Logger}
}

// Members returns the members (rpc.ClusterBackend).
func (r *Reconfigurer) Members() []*membership.Member { return r.cfg.Members.Members() }

// LinearizableBarrier waits until this member applied everything committed
// when it was called (rpc.ClusterBackend, for a linearizable MemberList).
func (r *Reconfigurer) LinearizableBarrier(ctx context.Context) error {
	return r.cfg.Backend.LinearizableBarrier(ctx)
}

// AddMember is etcd's AddMember.
func (r *Reconfigurer) AddMember(ctx context.Context, peerURLs []string, isLearner bool) (*membership.Member, []*membership.Member, error) {
	urls, err := membership.ParsePeerURLs(peerURLs)
	if err != nil {
		return nil, nil, err
	}
	m := membership.Member{ID: membership.NewMemberID(urls, r.cfg.Now()), PeerURLs: urls, IsLearner: isLearner}
	if r.cfg.StrictReconfigCheck {
		if !isLearner && !r.cfg.Members.ReadyToAddVoter() {
			return nil, nil, membership.ErrNotEnoughStarted
		}
		if !r.connectedFullySince(r.cfg.Now().Add(-HealthInterval)) {
			return nil, nil, membership.ErrUnhealthy
		}
	}
	cc := &raftpb.ConfChange{
		Type:    raftpb.ConfChangeType_ConfChangeAddNode.Enum(),
		NodeId:  proto.Uint64(m.ID),
		Context: (&membership.ConfChangeContext{Member: m}).Encode(),
	}
	if isLearner {
		cc.Type = raftpb.ConfChangeType_ConfChangeAddLearnerNode.Enum()
	}
	ms, err := r.configure(ctx, cc)
	if err != nil {
		return nil, nil, err
	}
	return &m, ms, nil
}

// RemoveMember is etcd's RemoveMember.
func (r *Reconfigurer) RemoveMember(ctx context.Context, id uint64) ([]*membership.Member, error) {
	if r.cfg.StrictReconfigCheck {
		if err := r.mayRemoveMember(id); err != nil {
			return nil, err
		}
	}
	return r.configure(ctx, &raftpb.ConfChange{
		Type:   raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(),
		NodeId: proto.Uint64(id),
	})
}

// mayRemoveMember is etcd's mayRemoveMember: removing a voter must leave a
// quorum of the remaining voters among those reachable now.
func (r *Reconfigurer) mayRemoveMember(id uint64) error {
	if m := r.cfg.Members.Member(id); m != nil && m.IsLearner {
		return nil // a learner is no part of any quorum
	}
	if !r.cfg.Members.ReadyToRemoveVoter(id) {
		return membership.ErrNotEnoughStarted
	}
	// A member that is down is no part of the active quorum either.
	if id != r.cfg.Self && r.cfg.Peers.ActiveSince(id).IsZero() {
		return nil
	}
	voters := r.voters()
	since := r.cfg.Now().Add(-HealthInterval)
	active := 0
	for _, v := range voters {
		if v == r.cfg.Self || r.connectedSince(v, since) {
			active++
		}
	}
	if !quorumAfterRemoval(len(voters), active) {
		return membership.ErrUnhealthy
	}
	return nil
}

// quorumAfterRemoval says whether removing one active voter out of voters
// leaves at least a quorum of the remaining voters active.
func quorumAfterRemoval(voters, active int) bool {
	return active-1 >= 1+(voters-1)/2
}

// UpdateMember is etcd's UpdateMember.
func (r *Reconfigurer) UpdateMember(ctx context.Context, id uint64, peerURLs []string) ([]*membership.Member, error) {
	urls, err := membership.ParsePeerURLs(peerURLs)
	if err != nil {
		return nil, err
	}
	return r.configure(ctx, &raftpb.ConfChange{
		Type:    raftpb.ConfChangeType_ConfChangeUpdateNode.Enum(),
		NodeId:  proto.Uint64(id),
		Context: (&membership.ConfChangeContext{Member: membership.Member{ID: id, PeerURLs: urls}}).Encode(),
	})
}

// configure proposes cc and waits until this member applied it; it returns
// the members after the change (etcd's configure).
func (r *Reconfigurer) configure(ctx context.Context, cc *raftpb.ConfChange) ([]*membership.Member, error) {
	id := r.cfg.Backend.NextID()
	cc.Id = proto.Uint64(id)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	ch := r.cfg.Wait.Register(id)
	defer r.cfg.Wait.Cancel(id)
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case res := <-ch:
			if res.Err != nil {
				return nil, res.Err
			}
			return r.cfg.Members.Members(), nil
		case <-retry.C:
			if err := r.cfg.Node.ProposeConfChange(ctx, cc); err != nil {
				if ctx.Err() != nil {
					return nil, backend.ErrTimeout
				}
				return nil, fmt.Errorf("reconfig: propose membership change: %w", err)
			}
			retry.Reset(confChangeRetry)
		case <-ctx.Done():
			return nil, backend.ErrTimeout
		case <-r.cfg.Node.Done():
			return nil, backend.ErrStopped
		}
	}
}

func (r *Reconfigurer) voters() []uint64 {
	var out []uint64
	for _, m := range r.cfg.Members.Members() {
		if !m.IsLearner {
			out = append(out, m.ID)
		}
	}
	return out
}

func (r *Reconfigurer) connectedSince(id uint64, since time.Time) bool {
	t := r.cfg.Peers.ActiveSince(id)
	return !t.IsZero() && !t.After(since)
}

// connectedFullySince is etcd's isConnectedFullySince over the voters.
func (r *Reconfigurer) connectedFullySince(since time.Time) bool {
	for _, id := range r.voters() {
		if id != r.cfg.Self && !r.connectedSince(id, since) {
			r.lg.Warn("rejecting a membership change: a voting member has not been reachable long enough",
				zap.String("member-id", idHex(id)), zap.Time("active-since", r.cfg.Peers.ActiveSince(id)), zap.Duration("required", HealthInterval))
			return false
		}
	}
	return true
}

func idHex(id uint64) string { return strconv.FormatUint(id, 16) }
