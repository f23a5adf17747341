package backend

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
)

// etcd's per-request overheads in its quota arithmetic.
const (
	kvOverhead    = 256
	leaseOverhead = 64
)

// checkQuota refuses a request that would take the MVCC data past the
// quota, and raises the NOSPACE alarm through Raft so that every member
// refuses writes until an operator disarms it, as etcd does. The measure is
// the store's logical size, which compaction lowers at once: no
// defragmentation is needed to get below the quota again.
func (b *Backend) checkQuota(ctx context.Context, r *pb.InternalRaftRequest) error {
	if b.cfg.QuotaBytes <= 0 {
		return nil
	}
	cost := requestCost(r)
	if cost == 0 || b.cfg.Store.LogicalSize()+int64(cost) < b.cfg.QuotaBytes {
		return nil
	}
	b.cfg.Logger.Warn("backend quota exceeded; raising NOSPACE alarm",
		zap.Int64("quota-bytes", b.cfg.QuotaBytes), zap.Int64("size-bytes", b.cfg.Store.LogicalSize()), zap.Int("request-bytes", cost))
	alarm := &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{
		Action:   pb.AlarmRequest_ACTIVATE,
		MemberID: b.cfg.MemberID,
		Alarm:    pb.AlarmType_NOSPACE,
	}}
	if _, err := b.propose(ctx, alarm, nil, nil); err != nil {
		b.cfg.Logger.Warn("failed to raise NOSPACE alarm", zap.Error(err))
	}
	return errNoSpace
}

func requestCost(r *pb.InternalRaftRequest) int {
	switch {
	case r.Put != nil:
		return costPut(r.Put)
	case r.Txn != nil:
		return costTxn(r.Txn)
	case r.LeaseGrant != nil:
		return leaseOverhead
	}
	return 0
}

func costPut(r *pb.PutRequest) int { return kvOverhead + len(r.Key) + len(r.Value) }

func costTxn(r *pb.TxnRequest) int {
	branch := func(ops []*pb.RequestOp) int {
		n := 0
		for _, op := range ops {
			if p := op.GetRequestPut(); p != nil {
				n += costPut(p)
			} else if t := op.GetRequestTxn(); t != nil {
				n += costTxn(t)
			}
		}
		return n
	}
	return max(branch(r.Success), branch(r.Failure))
}

// readGate refuses reads while the cluster is marked corrupt.
func (b *Backend) readGate() error {
	if b.cfg.Alarms != nil && b.cfg.Alarms.Active(pb.AlarmType_CORRUPT) {
		return errCorrupt
	}
	return nil
}
