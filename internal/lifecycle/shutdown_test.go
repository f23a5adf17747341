package lifecycle

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, s)
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func TestShutdownPhasesRunInOrder(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	s := NewShutdown(zap.New(core))
	var rec recorder
	// Registered out of order on purpose.
	for _, p := range []Phase{PhaseClose, PhasePersist, PhaseDrain, PhaseStopAccepting} {
		s.RegisterHook(p, p.String(), func(context.Context) error { rec.add(p.String()); return nil })
	}
	if err := s.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{"stop-accepting", "drain", "persist", "close"}
	if got := rec.get(); !slices.Equal(got, want) {
		t.Fatalf("phase order = %v, want %v", got, want)
	}
	started := logs.FilterMessage("shutdown phase started").All()
	finished := logs.FilterMessage("shutdown phase finished").All()
	if len(started) != 4 || len(finished) != 4 {
		t.Fatalf("logged %d started / %d finished phase entries, want 4/4", len(started), len(finished))
	}
	if _, ok := finished[0].ContextMap()["duration"]; !ok {
		t.Fatalf("phase finished log lacks duration: %v", finished[0].ContextMap())
	}
	if got := finished[3].ContextMap()["phase"]; got != "close" {
		t.Fatalf("last finished phase = %v, want close", got)
	}
}

// Two hooks of one phase wait for each other: only concurrent execution lets
// both finish before the deadline.
func TestShutdownHooksOfAPhaseRunConcurrently(t *testing.T) {
	s := NewShutdown(nil, WithShutdownTimeout(5*time.Second), WithShutdownGrace(10*time.Millisecond))
	a, b := make(chan struct{}), make(chan struct{})
	s.RegisterHook(PhaseDrain, "a", func(ctx context.Context) error {
		close(a)
		select {
		case <-b:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	s.RegisterHook(PhaseDrain, "b", func(ctx context.Context) error {
		close(b)
		select {
		case <-a:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	var persistAfterDrain atomic.Bool
	s.RegisterHook(PhasePersist, "p", func(context.Context) error {
		select {
		case <-a:
			select {
			case <-b:
				persistAfterDrain.Store(true)
			default:
			}
		default:
		}
		return nil
	})
	if err := s.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !persistAfterDrain.Load() {
		t.Fatalf("persist phase ran before the drain hooks")
	}
}

func TestShutdownTimeoutStillRunsLaterPhases(t *testing.T) {
	s := NewShutdown(nil, WithShutdownTimeout(50*time.Millisecond), WithShutdownGrace(time.Second))
	release := make(chan struct{})
	defer close(release)
	s.RegisterHook(PhaseDrain, "stuck", func(ctx context.Context) error {
		<-release // ignores ctx: the manager must not wait for it
		return nil
	})
	var persistCtxOK, closeRan atomic.Bool
	s.RegisterHook(PhasePersist, "persist", func(ctx context.Context) error {
		persistCtxOK.Store(ctx.Err() == nil)
		return nil
	})
	s.RegisterHook(PhaseClose, "close", func(ctx context.Context) error {
		closeRan.Store(true)
		return errors.New("close failed")
	})
	start := time.Now()
	err := s.Run(context.Background())
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Run took %v despite a 50ms timeout", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run error %v does not report the timeout", err)
	}
	if err == nil || !containsAll(err.Error(), `hook "stuck" did not finish`, `hook "close": close failed`) {
		t.Fatalf("Run error %q lacks the joined hook errors", err)
	}
	if !persistCtxOK.Load() {
		t.Fatalf("persist phase after the timeout got an already-cancelled context")
	}
	if !closeRan.Load() {
		t.Fatalf("close phase did not run after the timeout")
	}
}

func TestShutdownParentContextCancelled(t *testing.T) {
	s := NewShutdown(nil, WithShutdownGrace(time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var ran atomic.Int32
	for p := range numPhases {
		s.RegisterHook(Phase(p), "h", func(ctx context.Context) error {
			if ctx.Err() == nil {
				ran.Add(1)
			}
			return nil
		})
	}
	if err := s.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ran.Load() != int32(numPhases) {
		t.Fatalf("%d phases got a live grace context, want %d", ran.Load(), numPhases)
	}
}

func TestShutdownRunIsIdempotent(t *testing.T) {
	s := NewShutdown(nil)
	var calls atomic.Int32
	release := make(chan struct{})
	entered := make(chan struct{})
	s.RegisterHook(PhasePersist, "p", func(context.Context) error {
		calls.Add(1)
		close(entered)
		<-release
		return errors.New("boom")
	})
	errs := make(chan error, 2)
	go func() { errs <- s.Run(context.Background()) }()
	<-entered
	go func() { errs <- s.Run(context.Background()) }()
	select {
	case err := <-errs:
		t.Fatalf("a Run returned (%v) while the first was still running", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	e1, e2 := <-errs, <-errs
	if e1 == nil || e2 == nil || e1.Error() != e2.Error() {
		t.Fatalf("Run results differ: %v / %v", e1, e2)
	}
	if err := s.Run(context.Background()); err == nil || err.Error() != e1.Error() {
		t.Fatalf("third Run = %v, want %v", err, e1)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("hook ran %d times, want 1", n)
	}
	select {
	case <-s.Done():
	default:
		t.Fatalf("Done not closed after Run")
	}
}

func TestShutdownHookPanicBecomesError(t *testing.T) {
	s := NewShutdown(nil)
	var closed atomic.Bool
	s.RegisterHook(PhaseDrain, "bad", func(context.Context) error { panic("oops") })
	s.RegisterHook(PhaseClose, "close", func(context.Context) error { closed.Store(true); return nil })
	err := s.Run(context.Background())
	if err == nil || !containsAll(err.Error(), `hook "bad"`, "panic: oops") {
		t.Fatalf("Run = %v, want the hook panic as an error", err)
	}
	if !closed.Load() {
		t.Fatalf("later phase skipped after a panicking hook")
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestShutdownRunOnSignal(t *testing.T) {
	s := NewShutdown(nil)
	ran := make(chan struct{})
	s.RegisterHook(PhaseStopAccepting, "h", func(context.Context) error { close(ran); return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	ready := make(chan struct{})
	// The guard subscription keeps SIGUSR1 from killing the test process
	// while RunOnSignal has not subscribed yet; signals sent before then only
	// reach the guard, so the signal is re-sent until the shutdown runs.
	guard := make(chan os.Signal, 16)
	signal.Notify(guard, syscall.SIGUSR1)
	defer signal.Stop(guard)
	go func() {
		close(ready)
		errc <- s.RunOnSignal(ctx, syscall.SIGUSR1)
	}()
	<-ready
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatalf("RunOnSignal never ran the shutdown")
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ran:
			if err := <-errc; err != nil {
				t.Fatalf("RunOnSignal: %v", err)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestShutdownRunOnSignalContextEnds(t *testing.T) {
	s := NewShutdown(nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.RunOnSignal(ctx, syscall.SIGUSR2); err != nil {
		t.Fatalf("RunOnSignal = %v", err)
	}
	select {
	case <-s.Done():
		t.Fatalf("shutdown ran without a signal")
	default:
	}
}
