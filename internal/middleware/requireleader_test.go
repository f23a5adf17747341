package middleware

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s ctxStream) Context() context.Context { return s.ctx }

func withRequireLeader(ctx context.Context) context.Context {
	return metadata.NewIncomingContext(ctx, metadata.Pairs(rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader))
}

func TestRequireLeaderUnary(t *testing.T) {
	var has atomic.Bool
	r := NewRequireLeader(has.Load, time.Second)
	u := r.UnaryServerInterceptor()
	ok := func(context.Context, any) (any, error) { return "served", nil }
	if _, err := u(withRequireLeader(context.Background()), nil, nil, ok); !errors.Is(err, rpctypes.ErrGRPCNoLeader) {
		t.Fatalf("without a leader: %v, want %v", err, rpctypes.ErrGRPCNoLeader)
	}
	if resp, err := u(context.Background(), nil, nil, ok); err != nil || resp != "served" {
		t.Fatalf("without the metadata: %v %v", resp, err)
	}
	has.Store(true)
	if resp, err := u(withRequireLeader(context.Background()), nil, nil, ok); err != nil || resp != "served" {
		t.Fatalf("with a leader: %v %v", resp, err)
	}
}

func TestRequireLeaderStreamCancelledAfterThreeIntervals(t *testing.T) {
	var has atomic.Bool
	r := NewRequireLeader(has.Load, time.Millisecond)
	s := r.StreamServerInterceptor()
	ss := ctxStream{ctx: withRequireLeader(context.Background())}
	wait := func(_ any, st grpc.ServerStream) error {
		<-st.Context().Done()
		return st.Context().Err()
	}
	if err := s(nil, ss, &grpc.StreamServerInfo{}, wait); !errors.Is(err, rpctypes.ErrGRPCNoLeader) {
		t.Fatalf("open without a leader: %v", err)
	}
	has.Store(true)
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- s(nil, ss, &grpc.StreamServerInfo{}, func(srv any, st grpc.ServerStream) error {
			close(started) // the interceptor registers the stream before calling the handler
			return wait(srv, st)
		})
	}()
	select {
	case <-started:
	case err := <-errc:
		t.Fatalf("stream ended early: %v", err)
	}
	if n := r.Streams(); n != 1 {
		t.Fatalf("%d streams registered, want 1", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	has.Store(false)
	select {
	case err := <-errc:
		if !errors.Is(err, rpctypes.ErrGRPCNoLeader) {
			t.Fatalf("stream ended with %v, want %v", err, rpctypes.ErrGRPCNoLeader)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the monitor did not cancel the stream")
	}
	if n := r.Streams(); n != 0 {
		t.Fatalf("%d streams still registered", n)
	}
}
