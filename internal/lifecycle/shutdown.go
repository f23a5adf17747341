package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Phase is one step of a graceful shutdown. Phases run in declaration order.
type Phase int

const (
	// PhaseStopAccepting: report NOT_SERVING, stop accepting new connections
	// and requests.
	PhaseStopAccepting Phase = iota
	// PhaseDrain: let in-flight requests finish (e.g. grpc GracefulStop).
	PhaseDrain
	// PhasePersist: flush and sync state to disk.
	PhasePersist
	// PhaseClose: close engines, files and remaining resources.
	PhaseClose

	numPhases = int(PhaseClose) + 1
)

func (p Phase) String() string {
	switch p {
	case PhaseStopAccepting:
		return "stop-accepting"
	case PhaseDrain:
		return "drain"
	case PhasePersist:
		return "persist"
	case PhaseClose:
		return "close"
	default:
		return fmt.Sprintf("phase(%d)", int(p))
	}
}

const (
	// DefaultShutdownTimeout bounds a whole shutdown (--shutdown-timeout's default).
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultShutdownGrace is what each phase still gets once the overall
	// timeout has fired.
	DefaultShutdownGrace = 2 * time.Second
)

// ShutdownOption configures a Shutdown.
type ShutdownOption func(*Shutdown)

// WithShutdownTimeout sets the overall timeout (default 30 s; <= 0 keeps it).
func WithShutdownTimeout(d time.Duration) ShutdownOption {
	return func(s *Shutdown) {
		if d > 0 {
			s.timeout = d
		}
	}
}

// WithShutdownGrace sets the budget each phase still gets after the overall
// timeout has fired (default 2 s; <= 0 keeps it).
func WithShutdownGrace(d time.Duration) ShutdownOption {
	return func(s *Shutdown) {
		if d > 0 {
			s.grace = d
		}
	}
}

type hook struct {
	name string
	fn   func(ctx context.Context) error
}

// Shutdown runs hooks phase by phase. Hooks of one phase run concurrently;
// the next phase starts when all hooks of the current one have returned or
// the phase's context is done.
//
// Timeout policy: all phases share one deadline (the timeout, or ctx's own
// if earlier). A phase whose hooks outlive it is abandoned: its hooks see
// their context cancelled and keep running in the background, and Run moves
// on. Once the deadline has passed, every remaining phase still runs, each
// with a fresh context of the grace period: persisting state and closing
// files matter most exactly when draining took too long, and a bounded grace
// keeps the total bounded (timeout + remaining phases × grace).
type Shutdown struct {
	lg      *zap.Logger
	timeout time.Duration
	grace   time.Duration

	mu      sync.Mutex
	hooks   [numPhases][]hook
	started [numPhases]bool
	running bool

	done chan struct{}
	err  error
}

// NewShutdown returns a Shutdown logging to lg (nil: no logging).
func NewShutdown(lg *zap.Logger, opts ...ShutdownOption) *Shutdown {
	if lg == nil {
		lg = zap.NewNop()
	}
	s := &Shutdown{lg: lg, timeout: DefaultShutdownTimeout, grace: DefaultShutdownGrace, done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	return s
}

// RegisterHook adds fn to phase. A hook registered after its phase has
// started is not run (it is logged): registration belongs to server setup.
func (s *Shutdown) RegisterHook(phase Phase, name string, fn func(ctx context.Context) error) {
	if phase < 0 || int(phase) >= numPhases {
		panic(fmt.Sprintf("lifecycle: RegisterHook(%q) with invalid %v", name, phase))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started[phase] {
		s.lg.Warn("shutdown hook registered after its phase started; ignored",
			zap.String("phase", phase.String()), zap.String("hook", name))
		return
	}
	s.hooks[phase] = append(s.hooks[phase], hook{name: name, fn: fn})
}

// RunOnSignal waits for one of sigs (SIGTERM and SIGINT when none are given)
// and then runs the shutdown, which is bounded by its own timeout rather than
// by ctx. If ctx ends first it returns nil without shutting down.
func (s *Shutdown) RunOnSignal(ctx context.Context, sigs ...os.Signal) error {
	if len(sigs) == 0 {
		sigs = []os.Signal{syscall.SIGTERM, syscall.SIGINT}
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	defer signal.Stop(ch)
	select {
	case <-ctx.Done():
		return nil
	case sig := <-ch:
		s.lg.Info("received signal; shutting down", zap.String("signal", sig.String()))
	}
	return s.Run(context.WithoutCancel(ctx))
}

// Done is closed when a Run has finished.
func (s *Shutdown) Done() <-chan struct{} { return s.done }

// Run performs the shutdown once. A second (or concurrent) call does not
// run the hooks again: it waits for the first and returns its result, or
// ctx.Err() if its own ctx ends first. The error joins every hook failure
// and every phase that ran out of time (errors.Is(err,
// context.DeadlineExceeded) reports a timeout).
func (s *Shutdown) Run(ctx context.Context) error {
	s.mu.Lock()
	first := !s.running
	s.running = true
	s.mu.Unlock()
	if !first {
		select {
		case <-s.done:
			return s.err
		case <-ctx.Done():
			return fmt.Errorf("waiting for shutdown in progress: %w", ctx.Err())
		}
	}
	defer close(s.done)

	start := time.Now()
	s.lg.Info("shutdown started", zap.Duration("timeout", s.timeout))
	overall, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	var errs []error
	for p := range numPhases {
		phase := Phase(p)
		pctx, pcancel := overall, context.CancelFunc(func() {})
		if overall.Err() != nil {
			// Past the deadline: a short, fresh budget so the phase can still
			// release what it holds. WithoutCancel keeps ctx's values.
			pctx, pcancel = context.WithTimeout(context.WithoutCancel(ctx), s.grace)
		}
		if err := s.runPhase(pctx, phase); err != nil {
			errs = append(errs, err)
		}
		pcancel()
	}
	s.err = errors.Join(errs...)
	if s.err != nil {
		s.lg.Warn("shutdown finished with errors", zap.Duration("took", time.Since(start)), zap.Error(s.err))
	} else {
		s.lg.Info("shutdown finished", zap.Duration("took", time.Since(start)))
	}
	return s.err
}

func (s *Shutdown) runPhase(ctx context.Context, phase Phase) error {
	s.mu.Lock()
	s.started[phase] = true
	hooks := append([]hook(nil), s.hooks[phase]...)
	s.mu.Unlock()

	start := time.Now()
	s.lg.Info("shutdown phase started", zap.String("phase", phase.String()), zap.Int("hooks", len(hooks)))

	type result struct {
		name string
		err  error
	}
	// Buffered so abandoned hooks can still deliver and exit.
	results := make(chan result, len(hooks))
	for _, h := range hooks {
		go func() {
			var err error
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
					s.lg.Error("shutdown hook panicked", zap.String("phase", phase.String()),
						zap.String("hook", h.name), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
				}
				results <- result{h.name, err}
			}()
			err = h.fn(ctx)
		}()
	}

	var errs []error
	pending := make(map[string]int, len(hooks))
	for _, h := range hooks {
		pending[h.name]++
	}
	for range hooks {
		select {
		case r := <-results:
			pending[r.name]--
			if r.err != nil {
				errs = append(errs, fmt.Errorf("shutdown phase %s: hook %q: %w", phase, r.name, r.err))
			}
		case <-ctx.Done():
			for _, h := range hooks {
				if pending[h.name] > 0 {
					pending[h.name]--
					errs = append(errs, fmt.Errorf("shutdown phase %s: hook %q did not finish: %w", phase, h.name, ctx.Err()))
				}
			}
			s.logPhase(phase, start, errs)
			return errors.Join(errs...)
		}
	}
	s.logPhase(phase, start, errs)
	return errors.Join(errs...)
}

func (s *Shutdown) logPhase(phase Phase, start time.Time, errs []error) {
	fields := []zap.Field{zap.String("phase", phase.String()), zap.Duration("duration", time.Since(start))}
	if len(errs) > 0 {
		s.lg.Warn("shutdown phase finished", append(fields, zap.Error(errors.Join(errs...)))...)
		return
	}
	s.lg.Info("shutdown phase finished", fields...)
}
