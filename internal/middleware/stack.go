package middleware

import (
	"context"

	"google.golang.org/grpc"
)

// stackReserve is how much stack growStack makes room for. A range or put
// handler reaches ~20 KiB deep (gRPC, our layers, Pebble's iterator
// construction); with the chain's frames on top of a fresh goroutine's
// 2 KiB this makes the runtime allocate a 32 KiB stack in one step.
const stackReserve = 16 << 10

// growStack forces the runtime to grow the calling goroutine's stack now,
// while only a few frames are on it. gRPC runs most requests of a busy
// server on fresh goroutines (its stream workers are all taken), and
// each then grew its stack 2→4→8→16→32 KiB deep inside Pebble, where
// every copy adjusts twenty-odd frames: 20% of the CPU of a 1000-client
// serializable range load. One early copy of a shallow stack costs a
// fraction of that; on a goroutine whose stack is already large this is
// a 16 KiB clear.
//
//go:noinline
func growStack() {
	var buf [stackReserve]byte
	keep(buf[:])
}

// keep exists so that buf is not optimized away; it does not retain b, so
// buf stays on the stack.
//
//go:noinline
func keep(b []byte) { _ = b }

// GrowStackUnary pre-grows the request goroutine's stack (see growStack).
// It belongs first in the chain.
func GrowStackUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	growStack()
	return handler(ctx, req)
}
