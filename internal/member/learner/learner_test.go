package learner

import (
	"context"
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

func TestLearnerRefusesAllButStatusSerializableRangeAndSnapshot(t *testing.T) {
	learner := true
	unary, stream := Interceptors(func() bool { return learner })
	ok := func(context.Context, any) (any, error) { return "served", nil }
	cases := []struct {
		req   any
		serve bool
	}{
		{&pb.StatusRequest{}, true},
		{&pb.RangeRequest{Serializable: true}, true},
		{&pb.RangeRequest{}, false},
		{&pb.PutRequest{}, false},
		{&pb.TxnRequest{}, false},
		{&pb.LeaseGrantRequest{}, false},
		{&pb.MemberListRequest{}, false},
	}
	for _, c := range cases {
		_, err := unary(context.Background(), c.req, &grpc.UnaryServerInfo{}, ok)
		if c.serve != (err == nil) {
			t.Errorf("%T: err = %v, want served=%v", c.req, err, c.serve)
		}
		if err != nil && !errors.Is(err, rpctypes.ErrGRPCNotSupportedForLearner) {
			t.Errorf("%T: err = %v, want etcd's learner error", c.req, err)
		}
	}
	h := func(any, grpc.ServerStream) error { return nil }
	if err := stream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/etcdserverpb.Maintenance/Snapshot"}, h); err != nil {
		t.Errorf("snapshot on a learner: %v", err)
	}
	if err := stream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/etcdserverpb.Watch/Watch"}, h); !errors.Is(err, rpctypes.ErrGRPCNotSupportedForLearner) {
		t.Errorf("watch on a learner: %v", err)
	}
	learner = false
	if _, err := unary(context.Background(), &pb.PutRequest{}, &grpc.UnaryServerInfo{}, ok); err != nil {
		t.Errorf("put on a voter: %v", err)
	}
	if err := stream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/etcdserverpb.Watch/Watch"}, h); err != nil {
		t.Errorf("watch on a voter: %v", err)
	}
}
