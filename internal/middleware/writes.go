package middleware

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/txn"
)

// EtcdWrites is a ready-made LimitsConfig.IsWrite for etcd's API, mirroring
// which requests etcd refuses under its NOSPACE alarm: Put, a Txn containing
// a put (at any nesting depth) and LeaseGrant. Deletes, compaction, reads
// and streams stay allowed, since they do not grow the state.
func EtcdWrites(fullMethod string, req any) bool {
	switch fullMethod {
	case "/etcdserverpb.KV/Put", "/etcdserverpb.Lease/LeaseGrant":
		return true
	case "/etcdserverpb.KV/Txn":
		t, ok := req.(*pb.TxnRequest)
		return ok && txnHasPut(t, 0)
	}
	return false
}

// maxTxnDepth bounds the recursion; etcd rejects deeper nesting anyway.
const maxTxnDepth = 64

func txnHasPut(t *pb.TxnRequest, depth int) bool {
	if depth > maxTxnDepth {
		return true
	}
	for _, ops := range [][]*pb.RequestOp{t.GetSuccess(), t.GetFailure()} {
		for _, op := range ops {
			if op.GetRequestPut() != nil {
				return true
			}
			if sub := op.GetRequestTxn(); sub != nil && txnHasPut(sub, depth+1) {
				return true
			}
		}
	}
	return false
}

// EtcdProposals is a ready-made LimitsConfig.IsProposal for etcd's API: the
// KV requests whose server side is one Raft proposal and its result (Put,
// DeleteRange, a Txn that writes). A read-only Txn is served locally, like
// a Range, and keeps the general deadline.
func EtcdProposals(fullMethod string, req any) bool {
	switch fullMethod {
	case "/etcdserverpb.KV/Put", "/etcdserverpb.KV/DeleteRange":
		return true
	case "/etcdserverpb.KV/Txn":
		t, ok := req.(*pb.TxnRequest)
		return ok && !txn.IsTxnReadOnly(t)
	}
	return false
}

// EtcdLocalWork is a ready-made LimitsConfig.IsLocalWork for etcd's API:
// a Compact that waits for the physical compaction (its proposal is still
// bounded by the request path), Defragment, Hash and HashKV. Each can take
// minutes on a large store.
func EtcdLocalWork(fullMethod string, req any) bool {
	switch fullMethod {
	case "/etcdserverpb.KV/Compact":
		c, ok := req.(*pb.CompactionRequest)
		return ok && c.GetPhysical()
	case "/etcdserverpb.Maintenance/Defragment", "/etcdserverpb.Maintenance/Hash", "/etcdserverpb.Maintenance/HashKV":
		return true
	}
	return false
}
