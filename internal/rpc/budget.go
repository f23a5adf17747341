package rpc

import (
	"errors"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/respbudget"
)

// ErrGRPCRangeBytesInFlight is what a range gets when its context ended while
// it waited for the response budget (--max-range-bytes-in-flight): like
// etcd's "too many requests", a retry-later ResourceExhausted.
var ErrGRPCRangeBytesInFlight = status.Error(codes.ResourceExhausted, respbudget.ErrExhausted.Error())

// KVOption configures the KV service.
type KVOption func(*kvServer)

// WithResponseBudget makes Range and RangeStream charge the bytes of the
// responses they build to b, so that concurrent big ranges wait for each
// other instead of all materialising at once (see package respbudget).
// A unary Range's charge is released by c once gRPC has encoded the
// response; c must be the server's codec (BudgetCodec.ServerOption).
func WithResponseBudget(b *respbudget.Budget, c *BudgetCodec) KVOption {
	return func(s *kvServer) { s.budget, s.sent = b, c }
}

// budgetError maps a budget wait that ran out of time to ResourceExhausted.
func budgetError(err error) error {
	if errors.Is(err, respbudget.ErrExhausted) {
		return ErrGRPCRangeBytesInFlight
	}
	return toGRPCError(err)
}

// BudgetCodec is the server's gRPC codec: gRPC's own proto codec, which
// also lets a unary Range keep its response charged until gRPC has encoded
// it (the handler only builds the response; the encoded copy is made after
// it returns). gRPC encodes every reply a unary handler returns without an
// error, before it queues the bytes on the connection, so the release
// happens on the RPC's goroutine right after the copy is made (ADR 11).
//
// It replaces a stats handler that released the charge at the RPC's End
// event: with any stats handler installed, gRPC builds and dispatches its
// per-RPC events (and copies each request's metadata) for every call, which
// cost about 7 % of a point range's CPU. The codec's cost is one atomic load
// per response; only responses that drew on the shared budget (past
// respbudget.SmallBytes) are looked up.
type BudgetCodec struct {
	inner encoding.CodecV2
	// pending maps a *pb.RangeResponse being returned to the account to
	// release once it is encoded; n counts its entries so that Marshal
	// skips the map while it is empty (nearly always).
	pending sync.Map
	n       atomic.Int64
}

// NewBudgetCodec returns a codec that encodes with gRPC's proto codec.
func NewBudgetCodec() *BudgetCodec {
	return &BudgetCodec{inner: encoding.GetCodecV2(protoenc.Name)}
}

// Marshal implements encoding.CodecV2.
func (c *BudgetCodec) Marshal(v any) (mem.BufferSlice, error) {
	out, err := c.inner.Marshal(v)
	if c.n.Load() > 0 {
		if r, ok := v.(*pb.RangeResponse); ok {
			if a, ok := c.pending.LoadAndDelete(r); ok {
				c.n.Add(-1)
				a.(*respbudget.Account).Release()
			}
		}
	}
	return out, err
}

// Unmarshal implements encoding.CodecV2.
func (c *BudgetCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return c.inner.Unmarshal(data, v)
}

// Name implements encoding.CodecV2: the content subtype it serves.
func (c *BudgetCodec) Name() string { return c.inner.Name() }

// releaseAfterEncode hands a to c, to be released once resp is encoded, or
// releases it now when it holds nothing of the shared budget (a response
// within respbudget.SmallBytes) or there is no codec to do it.
func (c *BudgetCodec) releaseAfterEncode(resp *pb.RangeResponse, a *respbudget.Account) {
	if c == nil || !a.Holds() {
		a.Release()
		return
	}
	c.n.Add(1)
	c.pending.Store(resp, a)
}
