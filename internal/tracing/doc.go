// Package tracing is the server's OpenTelemetry tracing
// (--enable-distributed-tracing and the --distributed-tracing-* flags).
//
// Setup builds a tracer provider that batches spans to an OTLP gRPC
// collector, sampled per million as etcd's --distributed-tracing-sampling-rate
// says and always following a sampled parent, and returns the gRPC stats
// handler (otelgrpc) that opens one span per gRPC call, as etcd does.
//
// Inside a call, the request path opens child spans with Start, which takes
// its tracer from the span already in the context: with tracing off there
// is none and every helper costs a context lookup, with no provider held in
// a global variable. The spans of a write are
//
//	etcdserverpb.KV/Put (otelgrpc)
//	└─ put                   (kvtrace; etcd's name and attributes)
//	   └─ proposal           (backend: from proposing to the applied result)
//	      ├─ raft.commit     (proposed → handed to the applier, committed)
//	      └─ apply           (the applier's batch, from its start to its commit)
//	         └─ engine.write (the storage batch commit)
//
// raft.commit, apply and engine.write happen on the Raft and apply
// goroutines; they are recorded afterwards from the timestamps the applier
// returns with the result (apply.Timing), so nothing on those goroutines
// looks at spans. A linearizable read has a read_index child for the
// ReadIndex round and the wait for the local apply to reach it.
package tracing
