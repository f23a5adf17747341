package backend

import (
	"context"
	"errors"
	"math"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/lease"
)

// LeaseGrant replicates a grant. ID 0 lets the server choose: a positive ID
// from the proposal ID generator (unique per member and restart), as etcd
// does.
func (b *Backend) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	for r.ID == 0 {
		r.ID = int64(b.ids.Next() & math.MaxInt64)
	}
	res, err := b.Propose(ctx, &pb.InternalRaftRequest{LeaseGrant: r})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Resp.(*pb.LeaseGrantResponse), nil
}

// LeaseRevoke replicates a revocation: the lease and every key attached to
// it go, the keys at one revision.
func (b *Backend) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	res, err := b.Propose(ctx, &pb.InternalRaftRequest{LeaseRevoke: r})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Resp.(*pb.LeaseRevokeResponse), nil
}

// primaryLessor returns the lessor once it times leases: only the leader
// renews and answers TTLs, and a new leader only after it applied every
// entry of earlier terms.
func (b *Backend) primaryLessor(ctx context.Context) (*lease.Lessor, error) {
	le := b.cfg.Lessor
	if le == nil {
		return nil, lease.ErrLeaseNotFound
	}
	if !b.cfg.Node.IsLeader() {
		return nil, lease.ErrNotPrimary
	}
	if le.IsPrimary() {
		return le, nil
	}
	wctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	if err := le.WaitPrimary(wctx); err != nil {
		return nil, b.ctxErr(wctx, err)
	}
	return le, nil
}

// known reports whether lease id exists, waiting for this member to apply
// everything committed first when it does not: a lease granted through
// another member may not be applied here yet (etcd's FastLeaseKeepAlive).
func (b *Backend) known(ctx context.Context, le *lease.Lessor, id int64) (lease.Status, bool, error) {
	if st, ok := le.Lookup(id); ok {
		return st, true, nil
	}
	if err := b.LinearizableBarrier(ctx); err != nil {
		return lease.Status{}, false, err
	}
	st, ok := le.Lookup(id)
	return st, ok, nil
}

// waitCommittedApplied waits until this member has applied the entries it
// had committed when called (etcd's waitAppliedIndex), within the request
// timeout.
func (b *Backend) waitCommittedApplied(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	if err := b.cfg.Applier.WaitApplied(ctx, b.cfg.Node.Status().GetCommit()); err != nil {
		return b.ctxErr(ctx, err)
	}
	return nil
}

// LeaseRenew refreshes lease id on the leader and returns its TTL. Unknown
// or expired leases give lease.ErrLeaseNotFound (the rpc layer answers TTL
// 0); a follower forwards the call to the leader.
func (b *Backend) LeaseRenew(ctx context.Context, id int64) (int64, error) {
	if b.cfg.Lessor != nil && !b.cfg.Node.IsLeader() {
		var resp pb.LeaseKeepAliveResponse
		if err := b.forward(ctx, PathLeaseRenew, &pb.LeaseKeepAliveRequest{ID: id}, &resp); err != nil {
			return -1, err
		}
		return resp.TTL, nil
	}
	le, err := b.primaryLessor(ctx)
	if err != nil {
		return -1, err
	}
	if b.cfg.RenewWaitsForApply {
		if err := b.waitCommittedApplied(ctx); err != nil {
			return -1, err
		}
	}
	if _, ok, err := b.known(ctx, le, id); err != nil {
		return -1, err
	} else if !ok {
		return -1, lease.ErrLeaseNotFound
	}
	if le.NeedsCheckpointClear(id) {
		// A checkpointed remaining TTL must not outlive the renewal, or a
		// restart would bring back the old, shorter TTL.
		cp := &pb.LeaseCheckpointRequest{Checkpoints: []*pb.LeaseCheckpoint{{ID: id}}}
		if _, err := b.Propose(ctx, &pb.InternalRaftRequest{LeaseCheckpoint: cp}); err != nil {
			return -1, err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	ttl, err := le.Renew(rctx, id)
	if err != nil && !errors.Is(err, lease.ErrLeaseNotFound) && !errors.Is(err, lease.ErrNotPrimary) {
		return -1, b.ctxErr(rctx, err)
	}
	return ttl, err
}

// LeaseTimeToLive reports a lease's remaining and granted TTL and, with
// r.Keys, its keys. An unknown lease gives lease.ErrLeaseNotFound (the rpc
// layer answers TTL -1).
func (b *Backend) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	if b.cfg.Lessor != nil && !b.cfg.Node.IsLeader() {
		var resp pb.LeaseTimeToLiveResponse
		if err := b.forward(ctx, PathLeaseTimeToLive, r, &resp); err != nil {
			return nil, err
		}
		return &resp, nil
	}
	le, err := b.primaryLessor(ctx)
	if err != nil {
		return nil, err
	}
	st, ok, err := b.known(ctx, le, r.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, lease.ErrLeaseNotFound
	}
	if !st.Primary {
		// Demoted between the check and the lookup: the remaining TTL
		// is not known here any more.
		return nil, lease.ErrNotPrimary
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{}, ID: r.ID, TTL: st.TTL(), GrantedTTL: st.GrantedTTL}
	if r.Keys {
		keys, err := le.Keys(r.ID)
		if err != nil {
			return nil, err
		}
		resp.Keys = keys
	}
	return resp, nil
}

// LeaseLeases lists every lease this member knows, soonest expiry first.
func (b *Backend) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	resp := &pb.LeaseLeasesResponse{Header: &pb.ResponseHeader{Revision: b.cfg.Store.Rev()}, Leases: []*pb.LeaseStatus{}}
	if b.cfg.Lessor == nil {
		return resp, nil
	}
	for _, st := range b.cfg.Lessor.Leases() {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: st.ID})
	}
	return resp, nil
}

// RunLeaseExpiry times leases while this member leads, until ctx ends:
// expired leases are revoked through Raft (at most 1000 per second, 16 in
// flight), remaining TTLs are checkpointed through Raft, and the lessor is
// promoted and demoted as leadership comes and goes.
func (b *Backend) RunLeaseExpiry(ctx context.Context) {
	if b.cfg.Lessor == nil {
		return
	}
	t := time.NewTicker(lease.ExpiryInterval)
	defer t.Stop()
	b.cfg.Lessor.RunExpiry(ctx, t.C, b.cfg.Node.LeaderChanged, leaseProposer{b})
}

// leaseProposer is the expiry loop's access to Raft.
type leaseProposer struct{ b *Backend }

func (p leaseProposer) IsLeader() bool { return p.b.cfg.Node.IsLeader() }

func (p leaseProposer) LeaderReady(ctx context.Context) error {
	return p.b.LinearizableBarrier(ctx)
}

func (p leaseProposer) Revoke(ctx context.Context, id int64) error {
	_, err := p.b.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: id})
	if errors.Is(err, lease.ErrLeaseNotFound) {
		return nil // revoked meanwhile by a client
	}
	return err
}

func (p leaseProposer) Checkpoint(ctx context.Context, r *pb.LeaseCheckpointRequest) error {
	res, err := p.b.Propose(ctx, &pb.InternalRaftRequest{LeaseCheckpoint: r})
	if err != nil {
		return err
	}
	return res.Err
}
