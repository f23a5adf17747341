package middleware

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// stackReserve is how much stack growStack makes room for. A range handler
// reaches ~20 KiB deep (gRPC, our layers, Pebble's iterator
// construction); with the chain's frames on top of a fresh goroutine's
// 2 KiB this makes the runtime allocate a 32 KiB stack in one step.
// Keep it in step with the frame size in stack_amd64.s and stack_arm64.s.
//
//lint:ignore U1000 used by stack_generic.go, built on other architectures.
const stackReserve = 16 << 10

// growStack (stack_asm.go, stack_generic.go) forces the runtime to grow the
// calling goroutine's stack now, while only a few frames are on it. A fresh
// goroutine starts with a small stack and, on the way down through gRPC,
// our layers and Pebble, the runtime doubled it 2→4→8→16→32 KiB, each copy
// adjusting twenty-odd frames: 20% of the CPU of a 1000-client
// serializable range load. One early copy of a shallow stack costs a
// fraction of that. On amd64 and arm64 growStack is an assembly function
// with a stackReserve-byte frame that it never touches, so on a goroutine
// whose stack is already large it costs only the prologue's bounds check;
// elsewhere it is a Go function that also clears its frame.

// GrowStackUnary pre-grows the stack of requests that run deep on their
// own goroutine: KV Ranges that read Pebble there. Writes hand their work
// to the apply loop and then wait for Raft; a grown stack would only be held
// for that wait (1000 concurrent puts held 25 MiB more). It belongs first
// in the chain.
func GrowStackUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if info.FullMethod == rangeMethod && readsEngine(req) {
		growStack()
	}
	return handler(ctx, req)
}

// readsEngine reports whether a range is likely to open a Pebble iterator.
// A single key at the newest revision is usually answered from mvcc's
// latest-version cache (docs/adr/0015-latest-version-cache.md) a few frames
// deep, where pre-growing the stack was 5% of a 1000-client point-read
// load's CPU for nothing; when the cache misses, the stack grows as needed.
func readsEngine(req any) bool {
	r, ok := req.(*pb.RangeRequest)
	return !ok || len(r.RangeEnd) > 0 || r.Revision != 0
}

const rangeMethod = "/etcdserverpb.KV/Range"
