package middleware

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mmetrics "github.com/metastore/metastore/internal/metrics"
)

// ErrTooManyRequests is etcd's answer to overload
// (rpctypes.ErrGRPCRequestTooManyRequests: ResourceExhausted,
// "etcdserver: too many requests"); clientv3 recognises it.
var ErrTooManyRequests = rpctypes.ErrGRPCRequestTooManyRequests

// ErrMemoryLimit rejects a write while the heap is above the watermark: the
// in-memory analogue of etcd's NOSPACE alarm, with the same code.
var ErrMemoryLimit = status.Error(codes.ResourceExhausted,
	"etcdserver: memory usage over the limit; write rejected (reads still served)")

// DefaultMemorySampleInterval is how often Run samples the heap.
const DefaultMemorySampleInterval = 250 * time.Millisecond

// ConnCounter reports connections for Stats; *LimitedListener is one.
type ConnCounter interface {
	Count() int64
	Max() int64
}

// LimitsConfig configures a Limiter. Zero values switch a limit off.
type LimitsConfig struct {
	// MaxRequests bounds concurrent unary requests; the next one fails at
	// once with ErrTooManyRequests. Streams (Watch, LeaseKeepAlive) are long
	// lived and are not counted here: grpc.MaxConcurrentStreams and the
	// connection limit bound them.
	MaxRequests int64
	// RequestTimeout is the deadline given to unary requests that arrive
	// without an earlier one. Streams get none.
	RequestTimeout time.Duration
	// ProposalTimeout is how long the request path lets the requests
	// IsProposal selects wait (etcd's 5 s plus two election timeouts):
	// their whole wait is one Raft proposal, which the request path bounds
	// itself, without a timer per request. When it is positive and not
	// longer than RequestTimeout, those requests get no default deadline
	// here (a timer context per request is about 4 % of a write's CPU);
	// when RequestTimeout is shorter, they get RequestTimeout as others do.
	ProposalTimeout time.Duration
	// IsProposal selects the requests ProposalTimeout applies to (e.g.
	// EtcdProposals); nil: none.
	IsProposal func(fullMethod string, req any) bool
	// IsLocalWork selects the requests that, once accepted, wait for work
	// this member does on its whole store (e.g. EtcdLocalWork: a physical
	// compaction, a defragment, a hash of the store). etcd bounds none of
	// them on the server, and the work goes on when the caller stops
	// waiting, so they get no default deadline: one that fired would fail
	// the call while the work still completes. Only the client's deadline
	// bounds them. Nil: none.
	IsLocalWork func(fullMethod string, req any) bool
	// MaxMemoryBytes is the heap watermark above which requests IsWrite
	// selects fail with ErrMemoryLimit.
	MaxMemoryBytes int64
	// IsWrite says which requests the watermark rejects; req is nil when a
	// stream opens. Nil: none (the watermark then only reports).
	IsWrite func(fullMethod string, req any) bool
	// MemorySampler returns the heap size to compare; default HeapLiveBytes.
	MemorySampler func() uint64
	// MemorySampleInterval is Run's period (default 250 ms).
	MemorySampleInterval time.Duration
	// NewTicker is Run's clock (default time.NewTicker).
	NewTicker func(d time.Duration) (c <-chan time.Time, stop func())
	// Conns, if set, supplies the connection figures of Stats.
	Conns      ConnCounter
	Logger     *zap.Logger
	Registerer prometheus.Registerer // metastore_requests_rejected_total{reason}
}

// ResourceStats is the limits' current usage, for metrics and tests.
type ResourceStats struct {
	CurrentConnections int64
	MaxConnections     int64 // 0: unlimited
	CurrentRequests    int64 // unary requests in flight
	MaxRequests        int64 // 0: unlimited
	CurrentStreams     int64
	MemoryUsageBytes   int64 // last sample
	MaxMemoryBytes     int64 // 0: no watermark
	MemoryOverLimit    bool
}

// Limiter enforces the in-flight, memory and deadline limits.
type Limiter struct {
	cfg      LimitsConfig
	lg       *zap.Logger
	requests atomic.Int64
	streams  atomic.Int64
	memUsage atomic.Int64
	memOver  atomic.Bool
	rejected *prometheus.CounterVec
	rejBusy  prometheus.Counter
	rejMem   prometheus.Counter
}

// NewLimiter builds a Limiter and takes one memory sample. Call Run (e.g.
// with lifecycle.Supervisor.Go) to keep sampling.
func NewLimiter(cfg LimitsConfig) (*Limiter, error) {
	if cfg.MaxRequests < 0 || cfg.MaxMemoryBytes < 0 || cfg.RequestTimeout < 0 {
		return nil, errors.New("limits: negative limit")
	}
	if cfg.MemorySampler == nil {
		cfg.MemorySampler = HeapLiveBytes
	}
	if cfg.MemorySampleInterval <= 0 {
		cfg.MemorySampleInterval = DefaultMemorySampleInterval
	}
	if cfg.NewTicker == nil {
		cfg.NewTicker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	lg := cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	rej := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "metastore_requests_rejected_total",
		Help: "The total number of requests rejected by resource limits, by reason (too_many_requests, memory).",
	}, []string{"reason"})
	if err := mmetrics.RegisterAll(cfg.Registerer, rej); err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	l := &Limiter{cfg: cfg, lg: lg, rejected: rej,
		rejBusy: rej.WithLabelValues("too_many_requests"), rejMem: rej.WithLabelValues("memory")}
	l.SampleMemory()
	return l, nil
}

// HeapLiveBytes is the heap held by live objects as of the last GC
// (runtime/metrics /gc/heap/live:bytes). Unlike total heap it excludes
// garbage not yet collected, so a collection cycle cannot flap the watermark.
func HeapLiveBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 && s[0].Value.Uint64() > 0 {
		return s[0].Value.Uint64()
	}
	// Live bytes are known only after the first GC; until then the heap
	// objects (live and not yet collected) are an upper bound, so the
	// watermark is never blind at start.
	if s[1].Value.Kind() == metrics.KindUint64 {
		return s[1].Value.Uint64()
	}
	return 0
}

// SampleMemory takes one sample now and updates the watermark state.
func (l *Limiter) SampleMemory() {
	used := int64(l.cfg.MemorySampler())
	l.memUsage.Store(used)
	over := l.cfg.MaxMemoryBytes > 0 && used > l.cfg.MaxMemoryBytes
	if was := l.memOver.Swap(over); was != over {
		if over {
			l.lg.Warn("memory above the limit; rejecting writes", zap.Int64("usage-bytes", used),
				zap.Int64("limit-bytes", l.cfg.MaxMemoryBytes))
		} else {
			l.lg.Info("memory back under the limit; accepting writes", zap.Int64("usage-bytes", used),
				zap.Int64("limit-bytes", l.cfg.MaxMemoryBytes))
		}
	}
}

// Run samples memory every MemorySampleInterval until ctx is done.
func (l *Limiter) Run(ctx context.Context) {
	tick, stop := l.cfg.NewTicker(l.cfg.MemorySampleInterval)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			l.SampleMemory()
		}
	}
}

// Stats reports current usage against the limits.
func (l *Limiter) Stats() ResourceStats {
	st := ResourceStats{
		CurrentRequests:  l.requests.Load(),
		MaxRequests:      l.cfg.MaxRequests,
		CurrentStreams:   l.streams.Load(),
		MemoryUsageBytes: l.memUsage.Load(),
		MaxMemoryBytes:   l.cfg.MaxMemoryBytes,
		MemoryOverLimit:  l.memOver.Load(),
	}
	if l.cfg.Conns != nil {
		st.CurrentConnections = l.cfg.Conns.Count()
		st.MaxConnections = l.cfg.Conns.Max()
	}
	return st
}

func (l *Limiter) memoryRejects(method string, req any) bool {
	return l.memOver.Load() && l.cfg.IsWrite != nil && l.cfg.IsWrite(method, req)
}

// acquire takes an in-flight slot without ever waiting. A CAS loop rather
// than add-then-undo keeps rejected requests from briefly occupying slots.
func (l *Limiter) acquire() bool {
	limit := l.cfg.MaxRequests
	if limit <= 0 {
		l.requests.Add(1)
		return true
	}
	for {
		n := l.requests.Load()
		if n >= limit {
			return false
		}
		if l.requests.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// UnaryServerInterceptor checks the memory watermark, takes an in-flight
// slot (or fails at once) and applies the request timeout.
func (l *Limiter) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if l.memoryRejects(info.FullMethod, req) {
			l.rejMem.Inc()
			return nil, ErrMemoryLimit
		}
		if !l.acquire() {
			l.rejBusy.Inc()
			return nil, ErrTooManyRequests
		}
		defer l.requests.Add(-1)
		if d := l.timeout(info.FullMethod, req); d > 0 {
			if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > d {
				var release func()
				ctx, release = withLazyDeadline(ctx, d) // deadline.go: no timer unless waited on
				defer release()
			}
		}
		return handler(ctx, req)
	}
}

// timeout is the default deadline of a unary request, 0 for none.
func (l *Limiter) timeout(fullMethod string, req any) time.Duration {
	if l.cfg.IsLocalWork != nil && l.cfg.IsLocalWork(fullMethod, req) {
		return 0
	}
	d := l.cfg.RequestTimeout
	if p := l.cfg.ProposalTimeout; p > 0 && (d <= 0 || p <= d) && l.cfg.IsProposal != nil && l.cfg.IsProposal(fullMethod, req) {
		return 0 // bounded by the request path (ProposalTimeout)
	}
	return d
}

// StreamServerInterceptor checks the memory watermark when a stream opens
// (IsWrite gets a nil request) and counts open streams.
func (l *Limiter) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if l.memoryRejects(info.FullMethod, nil) {
			l.rejMem.Inc()
			return ErrMemoryLimit
		}
		l.streams.Add(1)
		defer l.streams.Add(-1)
		return handler(srv, ss)
	}
}
