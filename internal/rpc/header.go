package rpc

import pb "go.etcd.io/etcd/api/v3/etcdserverpb"

// HeaderSource fills the cluster-level fields every response carries.
type HeaderSource interface {
	ClusterID() uint64
	MemberID() uint64
	Term() uint64
	Rev() int64
}

// NewHeader returns a header with cluster, member and term filled and the
// store's current revision.
func NewHeader(s HeaderSource) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: s.ClusterID(), MemberId: s.MemberID(), RaftTerm: s.Term(), Revision: s.Rev()}
}

// fillHeader completes h (created by the executor with its revision).
func fillHeader(s HeaderSource, h *pb.ResponseHeader) *pb.ResponseHeader {
	if h == nil {
		return NewHeader(s)
	}
	h.ClusterId, h.MemberId, h.RaftTerm = s.ClusterID(), s.MemberID(), s.Term()
	if h.Revision == 0 {
		h.Revision = s.Rev()
	}
	return h
}
