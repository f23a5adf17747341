package apply

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/txn"
)

// The lessor is the executor's lease index.
var _ txn.LeaseIndex = (*lease.Lessor)(nil)

// applyLease applies LeaseGrant, LeaseRevoke and LeaseCheckpoint; handled is
// false for any other request. The lessor's in-memory changes are staged and
// become visible when ApplyEntries calls Lessor.Commit after the batch
// committed, so after is always nil; it is there for symmetry with the other
// appliers. A returned err is fatal (the batch could not be staged); request
// failures travel in res.Err.
func (a *Applier) applyLease(w *mvcc.Writer, b storage.Batch, r *pb.InternalRaftRequest) (res Result, handled bool, after func(), err error) {
	le := a.cfg.Lessor
	switch {
	case r.LeaseGrant != nil:
		if le == nil {
			return Result{Err: lease.ErrLeaseNotFound}, true, nil, nil
		}
		g := r.LeaseGrant
		ttl, gerr := le.StageGrant(b, g.GetID(), g.GetTTL())
		if gerr != nil {
			if isLeaseRequestError(gerr) {
				return Result{Err: gerr}, true, nil, nil
			}
			return Result{}, true, nil, gerr
		}
		resp := &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{Revision: w.Rev()}, ID: g.GetID(), TTL: ttl}
		return Result{Resp: resp}, true, nil, nil

	case r.LeaseRevoke != nil:
		if le == nil {
			return Result{Err: lease.ErrLeaseNotFound}, true, nil, nil
		}
		id := r.LeaseRevoke.GetID()
		keys, rerr := le.StageRevoke(b, id)
		if rerr != nil {
			if isLeaseRequestError(rerr) {
				return Result{Err: rerr}, true, nil, nil
			}
			return Result{}, true, nil, rerr
		}
		// One write txn: every attached key goes at one revision and
		// watchers get one response. No keys, no txn, no new revision.
		if len(keys) > 0 {
			tw := w.Begin()
			for _, k := range keys {
				tw.DeleteRange(k, nil)
			}
			tw.End()
			if werr := w.Err(); werr != nil {
				return Result{}, true, nil, fmt.Errorf("revoke lease %x: %w", id, werr)
			}
		}
		resp := &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: w.Rev()}}
		return Result{Resp: resp}, true, nil, nil

	case r.LeaseCheckpoint != nil:
		if le != nil {
			if cerr := le.StageCheckpoint(b, r.LeaseCheckpoint.GetCheckpoints()); cerr != nil {
				return Result{}, true, nil, cerr
			}
		}
		resp := &pb.LeaseCheckpointResponse{Header: &pb.ResponseHeader{Revision: w.Rev()}}
		return Result{Resp: resp}, true, nil, nil
	}
	return Result{}, false, nil, nil
}

func isLeaseRequestError(err error) bool {
	switch err {
	case lease.ErrLeaseNotFound, lease.ErrLeaseExists, lease.ErrLeaseTTLTooLarge:
		return true
	}
	return false
}
