package middleware

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/failpoint"
	"github.com/metastore/metastore/internal/metrics"
)

// ErrPanicRecovered is what a client sees when its request panicked.
var ErrPanicRecovered = status.Error(codes.Internal, "internal server error: panic recovered")

// RecoverConfig configures a Recoverer. Every field is optional.
type RecoverConfig struct {
	Logger *zap.Logger
	// Registerer receives metastore_panic_total{where="grpc"} (shared with the
	// lifecycle supervisor; an identical registered counter is reused).
	Registerer prometheus.Registerer
	// OnPanic is called after each recovered panic, e.g. to raise an alert.
	OnPanic func(fullMethod string, value any, stack []byte)
}

// Recoverer turns handler panics into ErrPanicRecovered.
type Recoverer struct {
	lg      *zap.Logger
	onPanic func(string, any, []byte)
	ctr     prometheus.Counter
	count   atomic.Int64
}

// NewRecoverer builds a Recoverer and registers its counter.
func NewRecoverer(cfg RecoverConfig) (*Recoverer, error) {
	vec, err := metrics.NewPanicCounter(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("recover interceptor: %w", err)
	}
	lg := cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	return &Recoverer{lg: lg, onPanic: cfg.OnPanic, ctr: vec.WithLabelValues("grpc")}, nil
}

// PanicCount is the number of request panics recovered.
func (r *Recoverer) PanicCount() int64 { return r.count.Load() }

func (r *Recoverer) recovered(method string, v any, err *error) {
	if failpoint.IsCrash(v) {
		panic(v) // a failpoint's crash must take the member down
	}
	stack := debug.Stack()
	r.count.Add(1)
	r.ctr.Inc()
	r.lg.Error("recovered panic in gRPC handler", zap.String("method", method),
		zap.Any("panic", v), zap.ByteString("stack", stack))
	if r.onPanic != nil {
		r.onPanic(method, v, stack)
	}
	*err = ErrPanicRecovered
}

// UnaryServerInterceptor recovers panics of unary handlers.
func (r *Recoverer) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if v := recover(); v != nil {
				resp = nil
				r.recovered(info.FullMethod, v, &err)
			}
		}()
		return handler(ctx, req)
	}
}

// StreamServerInterceptor recovers panics of stream handlers; the stream
// ends with ErrPanicRecovered.
func (r *Recoverer) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if v := recover(); v != nil {
				r.recovered(info.FullMethod, v, &err)
			}
		}()
		return handler(srv, ss)
	}
}
