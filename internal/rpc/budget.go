package rpc

import (
	"context"
	"errors"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
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
func WithResponseBudget(b *respbudget.Budget) KVOption {
	return func(s *kvServer) { s.budget = b }
}

// budgetError maps a budget wait that ran out of time to ResourceExhausted.
func budgetError(err error) error {
	if errors.Is(err, respbudget.ErrExhausted) {
		return ErrGRPCRangeBytesInFlight
	}
	return toGRPCError(err)
}

// rangeMethod is the unary Range's full gRPC method name.
const rangeMethod = "/etcdserverpb.KV/Range"

// BudgetStatsHandler is a gRPC stats handler that lets a unary Range keep
// its response charged until gRPC has encoded it and queued it on the
// connection (the RPC's End event): the handler only builds the response,
// and the encoded copy is made after it returns. gRPC reports End once the
// bytes are queued, not sent, so the queued copy of an answer to a client
// that reads slowly is no longer charged (ADR 11).
// Install it with grpc.StatsHandler next to WithResponseBudget; without it
// the charge ends when the handler returns.
type BudgetStatsHandler struct{}

// sentSlot carries a unary Range's account from the handler to the end of
// the RPC. Both run on the RPC's goroutine; mu only guards against a
// transport that reports End elsewhere.
type sentSlot struct {
	mu   sync.Mutex
	acct *respbudget.Account // guarded by mu
	done bool                // guarded by mu: End was seen
}

type sentSlotKey struct{}

// TagRPC gives every unary Range a slot for its account.
func (BudgetStatsHandler) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if info.FullMethodName != rangeMethod {
		return ctx
	}
	return context.WithValue(ctx, sentSlotKey{}, &sentSlot{})
}

// HandleRPC releases the account once the RPC ended (response queued or
// failed).
func (BudgetStatsHandler) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.End); !ok {
		return
	}
	sl, _ := ctx.Value(sentSlotKey{}).(*sentSlot)
	if sl == nil {
		return
	}
	sl.mu.Lock()
	a := sl.acct
	sl.acct, sl.done = nil, true
	sl.mu.Unlock()
	a.Release()
}

// TagConn implements stats.Handler.
func (BudgetStatsHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

// HandleConn implements stats.Handler.
func (BudgetStatsHandler) HandleConn(context.Context, stats.ConnStats) {}

// releaseAfterSend hands a to the RPC's slot, to be released once the
// response is written, or releases it now when there is no slot.
func releaseAfterSend(ctx context.Context, a *respbudget.Account) {
	if sl, _ := ctx.Value(sentSlotKey{}).(*sentSlot); sl != nil {
		sl.mu.Lock()
		if !sl.done {
			sl.acct, a = a, nil
		}
		sl.mu.Unlock()
	}
	a.Release()
}
