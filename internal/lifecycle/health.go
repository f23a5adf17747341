package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Checker is one health probe (storage, raft, lease, ...).
type Checker interface {
	Name() string
	Check(ctx context.Context) error
}

type checkerFunc struct {
	name string
	fn   func(ctx context.Context) error
}

func (c checkerFunc) Name() string                    { return c.name }
func (c checkerFunc) Check(ctx context.Context) error { return c.fn(ctx) }

// CheckerFunc adapts a function to a Checker.
func CheckerFunc(name string, fn func(ctx context.Context) error) Checker {
	return checkerFunc{name: name, fn: fn}
}

// Result is the latest outcome of one Checker.
type Result struct {
	Name      string
	Err       error // nil when healthy
	CheckedAt time.Time
	Duration  time.Duration
}

// Healthy reports whether the check passed.
func (r Result) Healthy() bool { return r.Err == nil }

// ErrShuttingDown is the result reported for every checker after
// SetNotServing.
var ErrShuttingDown = errors.New("server is shutting down")

// HealthConfig configures a Health. Every field is optional.
type HealthConfig struct {
	Logger *zap.Logger
	// Interval between evaluations in Run (default DefaultHealthInterval).
	Interval time.Duration
	// CheckTimeout bounds each Check (default 2 s).
	CheckTimeout time.Duration
	// Services are extra gRPC service names that mirror the overall status
	// of "" (e.g. "etcdserverpb.KV"). etcd itself only sets "".
	Services []string
	// NewTicker is the clock for Run (default time.NewTicker).
	NewTicker func(d time.Duration) (c <-chan time.Time, stop func())
	// Now stamps results (default time.Now).
	Now func() time.Time
}

// DefaultHealthInterval is how often Run evaluates the checkers unless
// HealthConfig.Interval says otherwise.
const DefaultHealthInterval = 5 * time.Second

// Health evaluates Checkers and publishes the verdict through a gRPC health
// server. The overall service "" starts NOT_SERVING and becomes SERVING after
// an Evaluate in which every checker passes, so probes do not see a member as
// ready before the server has checked its components.
type Health struct {
	cfg HealthConfig
	lg  *zap.Logger
	srv *health.Server

	mu       sync.Mutex
	checkers []Checker
	results  map[string]Result
	shutdown bool
	// verdict is the status the last Evaluate computed (NOT_SERVING before
	// the first); it is published unless suspended.
	verdict healthpb.HealthCheckResponse_ServingStatus
	// suspended counts Suspend calls not yet Resumed: NOT_SERVING while > 0.
	suspended int
}

// NewHealth returns a Health; register its Server() on the gRPC server with
// healthpb.RegisterHealthServer.
func NewHealth(cfg HealthConfig) *Health {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultHealthInterval
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 2 * time.Second
	}
	if cfg.NewTicker == nil {
		cfg.NewTicker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	lg := cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	h := &Health{cfg: cfg, lg: lg, srv: health.NewServer(), results: map[string]Result{},
		verdict: healthpb.HealthCheckResponse_NOT_SERVING}
	h.setAll(healthpb.HealthCheckResponse_NOT_SERVING)
	return h
}

// Server is the grpc.health.v1 implementation (Check, List and Watch).
func (h *Health) Server() *health.Server { return h.srv }

// Register adds a checker; it takes part from the next Evaluate on.
func (h *Health) Register(c Checker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checkers = append(h.checkers, c)
}

// Evaluate runs every checker concurrently (each bounded by CheckTimeout),
// stores the results and sets the serving status: SERVING only if all pass.
// After SetNotServing it changes nothing and returns the shutdown results.
func (h *Health) Evaluate(ctx context.Context) []Result {
	h.mu.Lock()
	checkers := slices.Clone(h.checkers)
	down := h.shutdown
	h.mu.Unlock()
	if down {
		return h.Results()
	}

	res := make([]Result, len(checkers))
	var wg sync.WaitGroup
	for i, c := range checkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = h.check(ctx, c)
		}()
	}
	wg.Wait()

	healthy := true
	for _, r := range res {
		if !r.Healthy() {
			healthy = false
		}
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shutdown { // SetNotServing raced with the checks and wins
		return h.resultsLocked()
	}
	for _, r := range res {
		prev, seen := h.results[r.Name]
		if !r.Healthy() && (!seen || prev.Healthy()) {
			h.lg.Warn("health check failing", zap.String("checker", r.Name), zap.Error(r.Err))
		} else if r.Healthy() && seen && !prev.Healthy() {
			h.lg.Info("health check recovered", zap.String("checker", r.Name))
		}
		h.results[r.Name] = r
	}
	h.verdict = healthpb.HealthCheckResponse_NOT_SERVING
	if healthy {
		h.verdict = healthpb.HealthCheckResponse_SERVING
	}
	if h.suspended == 0 {
		h.setAll(h.verdict)
	}
	return h.resultsLocked()
}

func (h *Health) check(ctx context.Context, c Checker) (r Result) {
	start := h.cfg.Now()
	r = Result{Name: c.Name(), CheckedAt: start}
	cctx, cancel := context.WithTimeout(ctx, h.cfg.CheckTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			r.Err = fmt.Errorf("health checker %q panicked: %v", r.Name, p)
		}
		r.Duration = h.cfg.Now().Sub(start)
	}()
	if err := c.Check(cctx); err != nil {
		r.Err = fmt.Errorf("health checker %q: %w", r.Name, err)
	}
	return r
}

// Run evaluates immediately and then every Interval until ctx is done.
// Start it with Supervisor.Go.
func (h *Health) Run(ctx context.Context) {
	tick, stop := h.cfg.NewTicker(h.cfg.Interval)
	defer stop()
	h.Evaluate(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			h.Evaluate(ctx)
		}
	}
}

// SetNotServing marks every service NOT_SERVING for good (shutdown phase 1):
// later evaluations do not change it, and Watch streams get the update.
func (h *Health) SetNotServing() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shutdown {
		return
	}
	h.shutdown = true
	now := h.cfg.Now()
	for _, c := range h.checkers {
		h.results[c.Name()] = Result{Name: c.Name(), Err: ErrShuttingDown, CheckedAt: now}
	}
	// Shutdown sets every known service NOT_SERVING and ignores later
	// SetServingStatus calls.
	h.srv.Shutdown()
}

// Suspend reports NOT_SERVING until the matching Resume, whatever the
// checkers say (etcd's StopGRPCServiceOnDefrag: load balancers and clients
// that watch health move away from a member while it defragments). Calls
// nest; after SetNotServing they change nothing.
func (h *Health) Suspend(reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shutdown {
		return
	}
	h.suspended++
	if h.suspended == 1 {
		h.lg.Warn("grpc service status changed", zap.String("service", ""),
			zap.String("status", healthpb.HealthCheckResponse_NOT_SERVING.String()), zap.String("reason", reason))
		h.setAll(healthpb.HealthCheckResponse_NOT_SERVING)
	}
}

// Resume ends one Suspend; after the last, the status is again what the
// checkers said at the last Evaluate.
func (h *Health) Resume() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.suspended == 0 {
		return
	}
	h.suspended--
	if h.suspended == 0 && !h.shutdown {
		h.lg.Info("grpc service status changed", zap.String("service", ""), zap.String("status", h.verdict.String()))
		h.setAll(h.verdict)
	}
}

// Serving reports whether the overall status is SERVING.
func (h *Health) Serving() bool {
	resp, err := h.srv.Check(context.Background(), &healthpb.HealthCheckRequest{Service: ""})
	return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
}

// Results returns the latest result of every registered checker, sorted by
// name (for /health, /readyz). Checkers never evaluated are absent.
func (h *Health) Results() []Result {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.resultsLocked()
}

func (h *Health) resultsLocked() []Result {
	out := make([]Result, 0, len(h.results))
	for _, r := range h.results {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Result) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (h *Health) setAll(st healthpb.HealthCheckResponse_ServingStatus) {
	h.srv.SetServingStatus("", st)
	for _, s := range h.cfg.Services {
		h.srv.SetServingStatus(s, st)
	}
}
