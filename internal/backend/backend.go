package backend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/alarm"
	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/raftnode"
	"github.com/metastore/metastore/internal/tracing"
	"github.com/metastore/metastore/internal/txn"
)

// Errors of the request path; rpc translates them to etcd's.
var (
	ErrTimeout         = errors.New("backend: request timed out")
	ErrStopped         = errors.New("backend: server stopped")
	ErrRequestTooLarge = errors.New("backend: request is too large")
	ErrNoLeader        = errors.New("backend: no leader")
)

// Config wires a Backend.
type Config struct {
	MemberID uint64
	Node     *raftnode.Node
	Applier  *apply.Applier
	Wait     *apply.Wait
	Store    *mvcc.Store
	Executor *txn.Executor
	Lessor   *lease.Lessor // nil: no leases
	// Peers reaches other members, for lease calls only the leader answers.
	Peers  PeerCaller
	Alarms *alarm.Store // nil: no alarms
	Auth   *auth.Store  // nil: no auth
	// QuotaBytes bounds the MVCC data's logical size (--quota-backend-bytes);
	// 0 or less: no quota.
	QuotaBytes int64
	// RequestTimeout bounds how long a proposal or a read barrier may wait
	// (etcd: 5 s + 2 × election timeout).
	RequestTimeout  time.Duration
	MaxRequestBytes int
	Logger          *zap.Logger
	// ProposalFailed is called when a proposal does not reach apply.
	ProposalFailed func()
	// Pending tracks proposals in flight (+1 / -1).
	Pending func(delta int)
	// RenewWaitsForApply is etcd's --feature-gates=FastLeaseKeepAlive=false:
	// the leader renews a lease only once it has applied everything it had
	// committed when the keep-alive arrived. false (etcd's default gate,
	// true) waits only for a lease it does not know yet.
	RenewWaitsForApply bool
}

// Backend serves requests against the replicated state.
type Backend struct {
	cfg       Config
	ids       *idGen
	deadlines deadlines // of proposals without an earlier deadline
	// wrappers recycles the *clientRequest of KV proposals (proposeClient).
	wrappers sync.Pool
}

// clientRequest is the wrapper of one KV-service proposal and its header,
// in one allocation that proposeClient recycles once the request has been
// applied.
type clientRequest struct {
	req pb.InternalRaftRequest
	hdr pb.RequestHeader
	// done receives the result; it is empty again whenever the wrapper is
	// recycled, since that happens only after the result was received.
	done chan apply.Result
}

// New returns a Backend.
func New(cfg Config) *Backend {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	b := &Backend{cfg: cfg, ids: newIDGen(cfg.MemberID, time.Now())}
	b.wrappers.New = func() any { return &clientRequest{done: make(chan apply.Result, 1)} }
	return b
}

// NextID returns a request ID unique on this member, for proposals that
// do not go through Propose (membership changes).
func (b *Backend) NextID() uint64 { return b.ids.Next() }

// Propose replicates r through Raft and returns the result of applying it.
func (b *Backend) Propose(ctx context.Context, r *pb.InternalRaftRequest) (apply.Result, error) {
	if err := b.checkQuota(ctx, r); err != nil {
		return apply.Result{}, err
	}
	return b.propose(ctx, r, nil, nil)
}

// proposeClient is Propose for the requests of the KV service; set puts
// the request gRPC decoded into the wrapper. Nothing touches the wrapper or
// that request once proposed, so the applier may apply them as they are
// (apply.Wait.Proposed) rather than decode the entry again. Other callers
// may build or reuse requests in ways an encode-decode round trip would
// not keep (an empty but non-nil byte slice, say), so theirs are decoded
// as on every other member.
//
// The wrapper is recycled once the result arrived: the applier sends it
// after it has applied the entry and never looks at the request again (a
// later entry with the same ID finds no waiter and is decoded). On any
// error the applier may still be using it, so it is left to the GC.
func (b *Backend) proposeClient(ctx context.Context, set func(r *pb.InternalRaftRequest)) (apply.Result, error) {
	w := b.wrappers.Get().(*clientRequest)
	set(&w.req)
	if err := b.checkQuota(ctx, &w.req); err != nil {
		return apply.Result{}, err
	}
	res, err := b.propose(ctx, &w.req, &w.hdr, w.done)
	if err == nil {
		w.req.Reset()
		w.hdr.Reset()
		b.wrappers.Put(w)
	}
	return res, err
}

// propose replicates r, with hdr (if not nil) as its header. With done
// (proposeClient), the applier may use r itself on this member and sends
// the result on done; without, r's entry is decoded as on other members.
func (b *Backend) propose(ctx context.Context, r *pb.InternalRaftRequest, hdr *pb.RequestHeader, done chan apply.Result) (apply.Result, error) {
	id := b.ids.Next()
	if hdr == nil {
		hdr = new(pb.RequestHeader)
	}
	hdr.ID = id
	r.Header = hdr
	if err := b.authHeader(ctx, r); err != nil {
		return apply.Result{}, err
	}
	data, err := proto.Marshal(r)
	if err != nil {
		return apply.Result{}, fmt.Errorf("backend: encode proposal: %w", err)
	}
	if b.cfg.MaxRequestBytes > 0 && len(data) > b.cfg.MaxRequestBytes {
		return apply.Result{}, ErrRequestTooLarge
	}
	// A deadline within RequestTimeout (the client's, or the limits
	// interceptor's when --request-timeout is shorter) bounds the request
	// as it is; otherwise a shared deadline bucket does, without a timer of
	// its own.
	var timeout *deadlineBucket
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > b.cfg.RequestTimeout {
		timeout = b.deadlines.after(b.cfg.RequestTimeout)
	}
	ctx, span := tracing.StartProposal(ctx)
	kept := r
	if done == nil {
		kept = nil
	}
	res, err := b.await(ctx, timeout, id, kept, data, done)
	span.End(applyTimes(res.Timing), err)
	return res, err
}

func applyTimes(t *apply.Timing) tracing.ApplyTimes {
	if t == nil {
		return tracing.ApplyTimes{}
	}
	return tracing.ApplyTimes{Applying: t.Applying, Writing: t.Writing, Written: t.Written}
}

// bound returns ctx limited to RequestTimeout from now. Requests from
// clients usually carry an earlier deadline already (the limits
// interceptor gives proposals exactly this one, see
// middleware.LimitsConfig.ProposalTimeout): then ctx is returned as it is,
// since a second timer context per request only costs.
func (b *Backend) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= b.cfg.RequestTimeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, b.cfg.RequestTimeout)
}

// await proposes data, the encoding of request id, and waits for its
// result, until ctx ends or, if timeout is set, its bucket closes. req, if
// not nil, is the request data encodes, for the applier to use as it is;
// done, if not nil, the channel to receive the result on.
func (b *Backend) await(ctx context.Context, timeout *deadlineBucket, id uint64, req *pb.InternalRaftRequest, data []byte, done chan apply.Result) (apply.Result, error) {
	ch := b.cfg.Wait.RegisterProposal(id, req, data, done)
	if b.cfg.Pending != nil {
		b.cfg.Pending(1)
		defer b.cfg.Pending(-1)
	}
	pctx := ctx
	var expired <-chan struct{} // nil: never
	if timeout != nil {
		pctx, expired = bucketCtx{timeout}, timeout.done
	}
	if err := b.cfg.Node.Propose(pctx, data); err != nil {
		b.cfg.Wait.Cancel(id)
		b.failed()
		return apply.Result{}, b.ctxErr(pctx, err)
	}
	select {
	case res := <-ch:
		return res, nil
	case <-ctx.Done():
		b.cfg.Wait.Cancel(id)
		b.failed()
		return apply.Result{}, b.ctxErr(ctx, ctx.Err())
	case <-expired:
		b.cfg.Wait.Cancel(id)
		b.failed()
		return apply.Result{}, ErrTimeout
	case <-b.cfg.Node.Done():
		b.cfg.Wait.Cancel(id)
		return apply.Result{}, ErrStopped
	}
}

func (b *Backend) failed() {
	if b.cfg.ProposalFailed != nil {
		b.cfg.ProposalFailed()
	}
}

// ctxErr maps a wait that ended without a result: the client's own cancel
// stays a cancel, our deadline becomes etcd's "request timed out".
func (b *Backend) ctxErr(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, raftnode.ErrStopped):
		return ErrStopped
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return ErrTimeout
	}
	return err
}

// LinearizableBarrier returns once local state reflects every write that
// was acknowledged before it was called.
func (b *Backend) LinearizableBarrier(ctx context.Context) error {
	ctx, span := tracing.StartReadIndex(ctx)
	defer span.End()
	ctx, cancel := b.bound(ctx)
	defer cancel()
	idx, err := b.cfg.Node.ReadIndex(ctx)
	if err != nil {
		return b.ctxErr(ctx, err)
	}
	if err := b.cfg.Applier.WaitApplied(ctx, idx); err != nil {
		return b.ctxErr(ctx, err)
	}
	return nil
}

// Range serves a range read.
func (b *Backend) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := b.readGate(); err != nil {
		return nil, err
	}
	if err := b.checkRange(ctx, r); err != nil {
		return nil, err
	}
	if !r.GetSerializable() {
		if err := b.LinearizableBarrier(ctx); err != nil {
			return nil, err
		}
	}
	return b.cfg.Executor.Range(ctx, r)
}

// RangeStream serves etcd 3.7's streaming range.
func (b *Backend) RangeStream(ctx context.Context, r *pb.RangeRequest, send func(*pb.RangeResponse) error) error {
	if err := b.readGate(); err != nil {
		return err
	}
	if err := b.checkRange(ctx, r); err != nil {
		return err
	}
	if !r.GetSerializable() {
		if err := b.LinearizableBarrier(ctx); err != nil {
			return err
		}
	}
	return b.cfg.Executor.RangeStream(ctx, r, send)
}

// Put replicates a put.
func (b *Backend) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	res, err := b.proposeClient(ctx, func(w *pb.InternalRaftRequest) { w.Put = r })
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Resp.(*pb.PutResponse), nil
}

// DeleteRange replicates a delete.
func (b *Backend) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	res, err := b.proposeClient(ctx, func(w *pb.InternalRaftRequest) { w.DeleteRange = r })
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Resp.(*pb.DeleteRangeResponse), nil
}

// Txn serves a transaction: read-only ones locally (after the barrier
// unless serializable), others through Raft.
func (b *Backend) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if txn.IsTxnReadOnly(r) {
		if err := b.readGate(); err != nil {
			return nil, err
		}
		if err := b.checkTxnRead(ctx, r); err != nil {
			return nil, err
		}
		if !txn.IsTxnSerializable(r) {
			if err := b.LinearizableBarrier(ctx); err != nil {
				return nil, err
			}
		}
		return b.cfg.Executor.TxnReadOnly(ctx, r)
	}
	res, err := b.proposeClient(ctx, func(w *pb.InternalRaftRequest) { w.Txn = r })
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Resp.(*pb.TxnResponse), nil
}

// Compact replicates a compaction; with physical it also waits until the
// old revisions are gone from this member's storage.
func (b *Backend) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	res, err := b.Propose(ctx, &pb.InternalRaftRequest{Compaction: r})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	if r.GetPhysical() && res.Physical != nil {
		select {
		case <-res.Physical:
		case <-ctx.Done():
			return nil, b.ctxErr(ctx, ctx.Err())
		}
	}
	resp := res.Resp.(*pb.CompactionResponse)
	return resp, nil
}

// Store exposes the MVCC store for status and hash calls.
func (b *Backend) Store() *mvcc.Store { return b.cfg.Store }

// The alarm errors are the alarm package's, so the rpc error table maps
// them in one place whether apply or the backend raised them.
var (
	errNoSpace = alarm.ErrNoSpace
	errCorrupt = alarm.ErrCorrupt
)
