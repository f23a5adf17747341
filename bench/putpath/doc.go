// Package putpath shows where a lone request's latency goes inside a
// server: it reads a Go execution trace taken while one client sent
// requests one after another (a put-1 benchmark, with the trace from the
// server's /debug/pprof/trace) and follows each request's critical path
// backwards, from the system call that wrote the response to the network
// wake-up that read the request, along the chain of goroutines that woke
// one another.
//
// Why: issue 10 asks a single client's put to come within 0.15 ms of the
// floor (an fdatasync plus a loopback round trip), or for the profile that
// shows the rest is outside the server. A CPU profile says what the server
// spends CPU on, not what a request waits for; the critical path does:
// each stretch of it is a system call (the kernel: fdatasync, socket and
// file writes), a wait for a CPU (the scheduler), or Go code running on a
// goroutine whose role (gRPC's transport, the request handler, raft, the
// storage engine, the server's own loops) the goroutine's start function
// names. Both metastore and etcd serve gRPC with grpc-go, so the same
// trace analysis applies to both (etcd with --enable-pprof).
//
// Tracing slows the server (each event costs ~0.1–1 µs), so absolute times
// are above the untraced latency; the shares are what carries over.
//
// bench/cmd/putpath prints its table for a trace file; bench/compare.sh
// --path takes the traces of both servers and compares them.
package putpath
