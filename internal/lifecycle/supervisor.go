package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/failpoint"
	"github.com/metastore/metastore/internal/metrics"
)

// PanicHandler is told about every recovered panic, e.g. to raise an alert.
type PanicHandler func(name string, value any, stack []byte)

// FatalError reports a supervised goroutine that exhausted its restarts.
type FatalError struct {
	Name     string
	Restarts int
	Err      error // the last failure
}

func (e *FatalError) Error() string {
	return fmt.Sprintf("goroutine %q failed after %d restarts: %v", e.Name, e.Restarts, e.Err)
}

func (e *FatalError) Unwrap() error { return e.Err }

// ErrPanic wraps a panic value turned into an error by GoWithRestart.
var ErrPanic = errors.New("panic")

// SupervisorConfig configures a Supervisor. Every field is optional.
type SupervisorConfig struct {
	Logger *zap.Logger
	// Registerer receives metastore_panic_total{where=<goroutine name>}
	// (shared with the gRPC middleware; an identical registered counter is
	// reused).
	Registerer prometheus.Registerer
	// OnPanic is called after each recovered panic.
	OnPanic PanicHandler
	// OnFatal is called once for each goroutine that exhausted its restarts,
	// so the server can stop. The same error is also sent on Fatal().
	OnFatal func(*FatalError)
	// Backoff gives the delay before restart number attempt (1-based).
	// Default: 100 ms doubling, capped at 10 s.
	Backoff func(attempt int) time.Duration
	// After is the clock used for backoff delays (default time.After);
	// tests inject one that fires at once.
	After func(time.Duration) <-chan time.Time
}

// Supervisor runs named goroutines under a shared context. Stop cancels the
// context and waits for all of them.
type Supervisor struct {
	cfg    SupervisorConfig
	lg     *zap.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	panics atomic.Int64
	ctr    *prometheus.CounterVec
	fatal  chan *FatalError
}

// NewSupervisor returns a Supervisor whose goroutines get a context derived
// from parent.
func NewSupervisor(parent context.Context, cfg SupervisorConfig) (*Supervisor, error) {
	ctr, err := metrics.NewPanicCounter(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	lg := cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(parent)
	return &Supervisor{cfg: cfg, lg: lg, ctx: ctx, cancel: cancel, ctr: ctr, fatal: make(chan *FatalError, 16)}, nil
}

// DefaultBackoff is 100 ms × 2^(attempt-1), at most 10 s.
func DefaultBackoff(attempt int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < attempt && d < 10*time.Second; i++ {
		d *= 2
	}
	return min(d, 10*time.Second)
}

// Fatal delivers a FatalError for each goroutine that exhausted its
// restarts. It is buffered (16); reports beyond that are only logged and
// passed to OnFatal.
func (s *Supervisor) Fatal() <-chan *FatalError { return s.fatal }

// PanicCount is the number of panics recovered by this Supervisor.
func (s *Supervisor) PanicCount() int64 { return s.panics.Load() }

// Context is the context handed to supervised goroutines.
func (s *Supervisor) Context() context.Context { return s.ctx }

// Go runs fn in a supervised goroutine. A panic is recovered,
// logged with its stack, counted and passed to OnPanic; it ends only this
// goroutine.
func (s *Supervisor) Go(name string, fn func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.call(name, func(ctx context.Context) error { fn(ctx); return nil })
	}()
}

// GoWithRestart runs fn in a goroutine and runs it again, after a backoff,
// whenever it panics or returns an error, up to maxRestarts times
// (0: never restart). fn returning nil, or any return once the Supervisor's
// context is done, ends it quietly. When the restarts are used up the last
// failure is reported as a *FatalError through OnFatal and Fatal().
func (s *Supervisor) GoWithRestart(name string, fn func(ctx context.Context) error, maxRestarts int) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for restarts := 0; ; restarts++ {
			err := s.call(name, fn)
			if err == nil || s.ctx.Err() != nil {
				return
			}
			if restarts >= maxRestarts {
				s.reportFatal(&FatalError{Name: name, Restarts: restarts, Err: err})
				return
			}
			delay := s.cfg.Backoff(restarts + 1)
			s.lg.Warn("supervised goroutine failed; restarting", zap.String("name", name),
				zap.Int("restart", restarts+1), zap.Int("max-restarts", maxRestarts),
				zap.Duration("backoff", delay), zap.Error(err))
			select {
			case <-s.cfg.After(delay):
			case <-s.ctx.Done():
				return
			}
		}
	}()
}

// call runs fn, turning a panic into an error wrapping ErrPanic.
func (s *Supervisor) call(name string, fn func(ctx context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if failpoint.IsCrash(r) {
				panic(r) // a failpoint's crash must take the member down
			}
			stack := debug.Stack()
			s.panics.Add(1)
			s.ctr.WithLabelValues(name).Inc()
			s.lg.Error("recovered panic in supervised goroutine", zap.String("name", name),
				zap.Any("panic", r), zap.ByteString("stack", stack))
			if s.cfg.OnPanic != nil {
				s.cfg.OnPanic(name, r, stack)
			}
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	return fn(s.ctx)
}

func (s *Supervisor) reportFatal(fe *FatalError) {
	s.lg.Error("supervised goroutine exhausted its restarts", zap.String("name", fe.Name),
		zap.Int("restarts", fe.Restarts), zap.Error(fe.Err))
	if s.cfg.OnFatal != nil {
		s.cfg.OnFatal(fe)
	}
	select {
	case s.fatal <- fe:
	default:
	}
}

// Stop cancels the goroutines' context and waits for all of them to return.
func (s *Supervisor) Stop() {
	s.cancel()
	s.wg.Wait()
}

// Wait blocks until every goroutine started so far has returned.
func (s *Supervisor) Wait() { s.wg.Wait() }
