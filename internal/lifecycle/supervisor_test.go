package lifecycle

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/metastore/metastore/internal/failpoint"
)

func immediate(time.Duration) <-chan time.Time {
	c := make(chan time.Time, 1)
	c <- time.Time{}
	return c
}

func TestGoRecoversPanicAndCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	type report struct {
		name  string
		value any
		stack []byte
	}
	reports := make(chan report, 1)
	s, err := NewSupervisor(context.Background(), SupervisorConfig{
		Registerer: reg,
		OnPanic:    func(name string, v any, stack []byte) { reports <- report{name, v, stack} },
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Go("lease-expiry", func(context.Context) { panic("test panic") })
	s.Wait()
	r := <-reports
	if r.name != "lease-expiry" || r.value != "test panic" || len(r.stack) == 0 {
		t.Fatalf("panic handler got %q %v (stack %d bytes)", r.name, r.value, len(r.stack))
	}
	if n := s.PanicCount(); n != 1 {
		t.Fatalf("PanicCount = %d, want 1", n)
	}
	if got := counterValue(t, s.ctr.WithLabelValues("lease-expiry")); got != 1 {
		t.Fatalf("metastore_panic_total{where=lease-expiry} = %v, want 1", got)
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "metastore_panic_total" || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("registry gathered %v (err %v), want one metastore_panic_total series", mfs, err)
	}
}

func TestGoStopCancelsContext(t *testing.T) {
	s, err := NewSupervisor(context.Background(), SupervisorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	s.Go("loop", func(ctx context.Context) { close(started); <-ctx.Done() })
	<-started
	s.Stop() // would hang if the context were not cancelled
}

func TestGoWithRestartRestartsUpToLimitThenReportsFatal(t *testing.T) {
	fatals := make(chan *FatalError, 1)
	var backoffs []int
	s, err := NewSupervisor(context.Background(), SupervisorConfig{
		OnFatal: func(fe *FatalError) { fatals <- fe },
		Backoff: func(a int) time.Duration { backoffs = append(backoffs, a); return time.Hour },
		After:   immediate,
	})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	s.GoWithRestart("critical", func(context.Context) error {
		if calls.Add(1)%2 == 0 {
			panic("odd failure")
		}
		return errors.New("plain failure")
	}, 3)
	s.Wait()
	if n := calls.Load(); n != 4 {
		t.Fatalf("fn ran %d times, want 1 + 3 restarts", n)
	}
	if len(backoffs) != 3 || backoffs[0] != 1 || backoffs[2] != 3 {
		t.Fatalf("backoff attempts = %v, want [1 2 3]", backoffs)
	}
	fe := <-fatals
	if fe.Name != "critical" || fe.Restarts != 3 {
		t.Fatalf("fatal = %+v", fe)
	}
	select {
	case got := <-s.Fatal():
		if got != fe {
			t.Fatalf("Fatal() delivered %v, want %v", got, fe)
		}
	default:
		t.Fatalf("Fatal() channel empty")
	}
	if s.PanicCount() != 2 {
		t.Fatalf("PanicCount = %d, want 2", s.PanicCount())
	}
}

func TestGoWithRestartPanicIsWrappedError(t *testing.T) {
	fatals := make(chan *FatalError, 1)
	s, err := NewSupervisor(context.Background(), SupervisorConfig{OnFatal: func(fe *FatalError) { fatals <- fe }})
	if err != nil {
		t.Fatal(err)
	}
	s.GoWithRestart("once", func(context.Context) error { panic("x") }, 0)
	s.Wait()
	if fe := <-fatals; !errors.Is(fe, ErrPanic) || fe.Restarts != 0 {
		t.Fatalf("fatal = %v, want ErrPanic after 0 restarts", fe)
	}
}

func TestGoWithRestartRecoversBeforeLimit(t *testing.T) {
	var fatal atomic.Bool
	s, err := NewSupervisor(context.Background(), SupervisorConfig{
		OnFatal: func(*FatalError) { fatal.Store(true) },
		After:   immediate,
	})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	s.GoWithRestart("flaky", func(context.Context) error {
		if calls.Add(1) <= 2 {
			return errors.New("transient")
		}
		return nil
	}, 5)
	s.Wait()
	if calls.Load() != 3 || fatal.Load() {
		t.Fatalf("calls = %d, fatal = %v; want 3 calls and no fatal", calls.Load(), fatal.Load())
	}
}

func TestGoWithRestartStopsOnCancel(t *testing.T) {
	var fatal atomic.Bool
	s, err := NewSupervisor(context.Background(), SupervisorConfig{
		OnFatal: func(*FatalError) { fatal.Store(true) },
		After:   func(time.Duration) <-chan time.Time { return nil }, // backoff never ends
	})
	if err != nil {
		t.Fatal(err)
	}
	failed := make(chan struct{})
	var calls atomic.Int32
	s.GoWithRestart("w", func(context.Context) error {
		if calls.Add(1) == 1 {
			close(failed)
		}
		return errors.New("fail")
	}, 10)
	<-failed
	s.Stop() // must interrupt the backoff wait
	if calls.Load() != 1 || fatal.Load() {
		t.Fatalf("calls = %d fatal = %v after Stop; want 1 and false", calls.Load(), fatal.Load())
	}
}

func TestDefaultBackoff(t *testing.T) {
	if DefaultBackoff(1) != 100*time.Millisecond || DefaultBackoff(2) != 200*time.Millisecond || DefaultBackoff(50) != 10*time.Second {
		t.Fatalf("DefaultBackoff = %v %v %v", DefaultBackoff(1), DefaultBackoff(2), DefaultBackoff(50))
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestCallLetsFailpointCrashThrough: a failpoint's panic stands for the
// member dying there, so a supervised goroutine does not recover it.
func TestCallLetsFailpointCrashThrough(t *testing.T) {
	s, err := NewSupervisor(context.Background(), SupervisorConfig{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	crash := failpoint.NewCrash("compactBeforeCommitBatch", "boom")
	v := func() (v any) {
		defer func() { v = recover() }()
		_ = s.call("compactor", func(context.Context) error { panic(crash) })
		return nil
	}()
	if v != crash {
		t.Fatalf("recovered %v, want the crash panicking on", v)
	}
	if n := s.PanicCount(); n != 0 {
		t.Fatalf("PanicCount = %d, want 0", n)
	}
	if err := s.call("compactor", func(context.Context) error { panic("bug") }); !errors.Is(err, ErrPanic) {
		t.Fatalf("ordinary panic: err = %v, want ErrPanic", err)
	}
}
