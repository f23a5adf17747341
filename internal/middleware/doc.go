// Package middleware is the request-level half of the reliability layer:
// gRPC interceptors (each in its own file, unary and stream) and a listener
// wrapper that keep one bad request or one overload from taking the member
// down.
//
//   - recover.go: a panicking handler returns codes.Internal; the server keeps
//     serving and the panic is logged with its stack and counted.
//   - ratelimit.go: a per-client-IP token bucket.
//   - limits.go: at most N unary requests in flight, a memory watermark that
//     rejects writes (the caller says which requests write) while reads
//     continue, and a default deadline for unary requests.
//   - conn.go: a net.Listener that refuses connections beyond a maximum.
//   - metrics.go: etcd's grpc_server_* metrics plus in-flight gauges.
//   - slowlog.go: etcd's slow-request warnings ("request stats" past
//     --warning-unary-request-duration, "apply request took too long" for
//     reads past --warning-apply-duration) with the request summary.
//   - stack.go: grows a KV Range goroutine's stack in one early step
//     instead of many deep ones (a performance measure, not a limit).
//   - chain.go: the order the server installs them in; compose.go runs a
//     unary chain as one interceptor, without gRPC's closure per level.
//   - writes.go: EtcdWrites, a ready-made "which requests write" predicate
//     for the memory watermark.
//
// Overload answers are fast ResourceExhausted errors with etcd's wording,
// never queues that grow without bound.
package middleware
