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

// confChangeRetry is how long configure waits for a proposed change
// before proposing it again: raft's leader turns a conf change into an
// empty entry while an earlier one is not applied yet on it, and
// nothing tells the proposer. Proposing twice is harmless: the second
// application fails validation (the ID exists, was removed, is no
// learner any more) and only the first outcome reaches the waiter.
const confChangeRetry = time.Second

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
	cfg    Config
	lg     *zap.Logger
	policy *Policy
}

// New returns a Reconfigurer.
func New(cfg Config) *Reconfigurer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Reconfigurer{cfg: cfg, lg: cfg.Logger, policy: &Policy{
		Self:                cfg.Self,
		Members:             cfg.Members,
		Status:              cfg.Node.Status,
		ActiveSince:         cfg.Peers.ActiveSince,
		Barrier:             cfg.Backend.LinearizableBarrier,
		StrictReconfigCheck: cfg.StrictReconfigCheck,
		Now:                 cfg.Now,
		Logger:              cfg.Logger,
	}}
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
	if err := r.policy.CheckAdd(isLearner); err != nil {
		return nil, nil, err
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
	if err := r.policy.CheckRemove(id); err != nil {
		return nil, err
	}
	return r.configure(ctx, &raftpb.ConfChange{
		Type:   raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(),
		NodeId: proto.Uint64(id),
	})
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

func idHex(id uint64) string { return strconv.FormatUint(id, 16) }
