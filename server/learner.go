package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// A learner replicates the log but is in no quorum, so its state may lag
// and it cannot take part in a linearizable read or accept a write of its
// own. etcd therefore refuses every client request on a learner except
// Status and serializable Range (unary) and Snapshot (stream), with
// FailedPrecondition "etcdserver: rpc not supported for learner"; clients
// move on to another endpoint. We refuse the same set, before any other
// interceptor, as etcd's v3rpc interceptor does.

const snapshotMethod = "/etcdserverpb.Maintenance/Snapshot"

func learnerServes(req any) bool {
	switch r := req.(type) {
	case *pb.StatusRequest:
		return true
	case *pb.RangeRequest:
		return r.GetSerializable()
	default:
		return false
	}
}

func (s *Server) learnerUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !learnerServes(req) && s.IsLearner() {
		return nil, rpctypes.ErrGRPCNotSupportedForLearner
	}
	return handler(ctx, req)
}

func (s *Server) learnerStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod != snapshotMethod && s.IsLearner() {
		return rpctypes.ErrGRPCNotSupportedForLearner
	}
	return handler(srv, ss)
}
