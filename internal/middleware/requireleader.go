package middleware

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// maxNoLeaderIntervals is how many consecutive leaderless election
// timeouts the monitor tolerates before it cancels the streams that asked
// for a leader. Reopening a stream costs more than refusing a new request,
// so, like etcd, streams get three election timeouts to see a leader again.
const maxNoLeaderIntervals = 3

// errStreamNoLeader is the cancellation cause the monitor gives a stream's
// context; the interceptor turns it into etcd's "no leader" error.
var errStreamNoLeader = errors.New("middleware: member has no leader")

// RequireLeader implements clientv3.WithRequireLeader (gRPC metadata
// "hasleader"="true"): a unary request carrying it fails at once with
// etcd's "no leader" error when this member knows no leader; a stream
// carrying it is refused on open then, and Run cancels the open ones once
// the member has been without a leader for three election timeouts, so a
// client watching through a partitioned member fails over instead of
// stalling silently.
type RequireLeader struct {
	hasLeader func() bool
	interval  time.Duration

	mu sync.Mutex
	// streams are the open streams that asked for a leader, each with the
	// cancel function of its context. Guarded by mu.
	streams map[*leaderStream]context.CancelCauseFunc
}

// NewRequireLeader returns the interceptor pair's state. hasLeader reports
// whether the member currently knows a Raft leader; election is the
// election timeout, the monitor's check interval.
func NewRequireLeader(hasLeader func() bool, election time.Duration) *RequireLeader {
	if election <= 0 {
		election = time.Second
	}
	return &RequireLeader{hasLeader: hasLeader, interval: election, streams: make(map[*leaderStream]context.CancelCauseFunc)}
}

// requiresLeader reports whether the request's metadata asks for a leader.
func requiresLeader(ctx context.Context) bool {
	// ValueFromIncomingContext reads the one key; FromIncomingContext would
	// copy the whole metadata map on every request.
	ks := metadata.ValueFromIncomingContext(ctx, rpctypes.MetadataRequireLeaderKey)
	return len(ks) > 0 && ks[0] == rpctypes.MetadataHasLeader
}

// UnaryServerInterceptor refuses a leader-requiring request on a member
// without a leader.
func (r *RequireLeader) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if requiresLeader(ctx) && !r.hasLeader() {
			return nil, rpctypes.ErrGRPCNoLeader
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor refuses a leader-requiring stream on a member
// without a leader and registers the others with the monitor.
func (r *RequireLeader) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !requiresLeader(ss.Context()) {
			return handler(srv, ss)
		}
		if !r.hasLeader() {
			return rpctypes.ErrGRPCNoLeader
		}
		ctx, cancel := context.WithCancelCause(ss.Context())
		ls := &leaderStream{ServerStream: ss, ctx: ctx}
		r.mu.Lock()
		r.streams[ls] = cancel
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			delete(r.streams, ls)
			r.mu.Unlock()
			cancel(nil)
		}()
		err := handler(srv, ls)
		if errors.Is(context.Cause(ctx), errStreamNoLeader) {
			return rpctypes.ErrGRPCNoLeader
		}
		return err
	}
}

// Run checks for a leader every election timeout until ctx ends, and
// cancels the registered streams after maxNoLeaderIntervals checks in a row
// found none.
func (r *RequireLeader) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.hasLeader() {
			missed = 0
			continue
		}
		missed++
		if missed >= maxNoLeaderIntervals {
			r.cancelAll()
		}
	}
}

// cancelAll cancels every registered stream with the "no leader" cause.
func (r *RequireLeader) cancelAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, cancel := range r.streams {
		cancel(errStreamNoLeader)
	}
}

// Streams returns how many leader-requiring streams are open.
func (r *RequireLeader) Streams() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.streams)
}

// leaderStream is a server stream whose context the monitor can cancel.
type leaderStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *leaderStream) Context() context.Context { return s.ctx }
