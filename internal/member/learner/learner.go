package learner

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

const snapshotMethod = "/etcdserverpb.Maintenance/Snapshot"

// Serves says whether a learner answers the unary request req.
func Serves(req any) bool {
	switch r := req.(type) {
	case *pb.StatusRequest:
		return true
	case *pb.RangeRequest:
		return r.GetSerializable()
	default:
		return false
	}
}

// ServesStream says whether a learner serves the stream method.
func ServesStream(fullMethod string) bool { return fullMethod == snapshotMethod }

// Interceptors refuse what a learner does not serve while isLearner says
// this member is one; the membership can change at any time, so it is
// asked per request.
func Interceptors(isLearner func() bool) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	unary := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !Serves(req) && isLearner() {
			return nil, rpctypes.ErrGRPCNotSupportedForLearner
		}
		return handler(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !ServesStream(info.FullMethod) && isLearner() {
			return rpctypes.ErrGRPCNotSupportedForLearner
		}
		return handler(srv, ss)
	}
	return unary, stream
}
