package middleware

import "google.golang.org/grpc"

// ChainOptions are the interceptors to chain; any nil one is skipped.
type ChainOptions struct {
	Recover *Recoverer
	// SlowLog logs slow requests; like etcd's log interceptor it times
	// the whole call, so it runs just inside the outer recover.
	SlowLog *SlowLog
	// RoleUnary and RoleStream refuse requests this member's role cannot
	// serve (a learner's); like etcd's check, they run before the metrics.
	RoleUnary  grpc.UnaryServerInterceptor
	RoleStream grpc.StreamServerInterceptor
	// RequireLeader refuses requests asking for a leader
	// (clientv3.WithRequireLeader) while the member has none; like etcd's
	// check it runs before the metrics and the handlers.
	RequireLeader *RequireLeader
	RateLimit     *RateLimiter
	Limits        *Limiter
	// AuthUnary and AuthStream are the server's token check (the auth slot).
	AuthUnary  grpc.UnaryServerInterceptor
	AuthStream grpc.StreamServerInterceptor
	Metrics    *GRPCMetrics
	// MetricsOuter moves the metrics interceptor to just after the outer
	// recover, so requests refused by the limits or by auth are counted in
	// grpc_server_handled_total with their codes, as etcd counts them
	// (etcd's metrics interceptor is outermost and its auth is in handlers).
	MetricsOuter bool
}

// Chain returns the interceptors in the order
//
//	(grow stack, unary only) → recover → (slow log, unary only) → role → require leader → rate limit → limits (memory, in-flight, timeout) → auth → metrics → recover
//
// for grpc.ChainUnaryInterceptor and grpc.ChainStreamInterceptor. The outer
// recover protects the interceptors themselves; the inner one, next to the
// handler, turns a handler panic into codes.Internal before the metrics see
// it, so the request is still counted in grpc_server_handled_total (the
// provider does not observe a call that unwinds through it). A panic is
// counted once either way. Requests refused by the limits are cheap to
// refuse and never reach the metrics interceptor: they are counted by
// metastore_rate_limited_total and metastore_requests_rejected_total
// (unless MetricsOuter).
func Chain(o ChainOptions) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	// Streams are long-lived: their stacks grow once, not per request.
	us := []grpc.UnaryServerInterceptor{GrowStackUnary}
	var ss []grpc.StreamServerInterceptor
	if o.Recover != nil {
		us = append(us, o.Recover.UnaryServerInterceptor())
		ss = append(ss, o.Recover.StreamServerInterceptor())
	}
	if o.SlowLog != nil {
		us = append(us, o.SlowLog.UnaryServerInterceptor())
	}
	if o.RoleUnary != nil {
		us = append(us, o.RoleUnary)
	}
	if o.RoleStream != nil {
		ss = append(ss, o.RoleStream)
	}
	if o.RequireLeader != nil {
		us = append(us, o.RequireLeader.UnaryServerInterceptor())
		ss = append(ss, o.RequireLeader.StreamServerInterceptor())
	}
	if o.Metrics != nil && o.MetricsOuter {
		us = append(us, o.Metrics.UnaryServerInterceptor())
		ss = append(ss, o.Metrics.StreamServerInterceptor())
	}
	if o.RateLimit != nil && o.RateLimit.Enabled() {
		us = append(us, o.RateLimit.UnaryServerInterceptor())
		ss = append(ss, o.RateLimit.StreamServerInterceptor())
	}
	if o.Limits != nil {
		us = append(us, o.Limits.UnaryServerInterceptor())
		ss = append(ss, o.Limits.StreamServerInterceptor())
	}
	if o.AuthUnary != nil {
		us = append(us, o.AuthUnary)
	}
	if o.AuthStream != nil {
		ss = append(ss, o.AuthStream)
	}
	if o.Metrics != nil {
		if !o.MetricsOuter {
			us = append(us, o.Metrics.UnaryServerInterceptor())
			ss = append(ss, o.Metrics.StreamServerInterceptor())
		}
		if o.Recover != nil {
			us = append(us, o.Recover.UnaryServerInterceptor())
			ss = append(ss, o.Recover.StreamServerInterceptor())
		}
	}
	return us, ss
}
