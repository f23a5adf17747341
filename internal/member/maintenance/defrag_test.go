package maintenance

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

// gatedCompactor is a Compactor whose CompactAll reports its start and
// waits for release; it records what the health status saw.
type gatedCompactor struct {
	started chan context.Context
	release chan error
	mu      sync.Mutex
	events  []string // guarded by mu
}

func newGatedCompactor() *gatedCompactor {
	return &gatedCompactor{started: make(chan context.Context, 4), release: make(chan error)}
}

func (g *gatedCompactor) record(e string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.events = append(g.events, e)
}

func (g *gatedCompactor) CompactAll(ctx context.Context) error {
	g.record("compact")
	g.started <- ctx
	return <-g.release
}

func (g *gatedCompactor) Usage() storage.Usage { return storage.Usage{SizeBytes: 10, LiveBytes: 5} }

func (g *gatedCompactor) Suspend(string) { g.record("suspend") }
func (g *gatedCompactor) Resume()        { g.record("resume") }

func waitStarted(t *testing.T, g *gatedCompactor) context.Context {
	t.Helper()
	select {
	case ctx := <-g.started:
		return ctx
	case <-time.After(30 * time.Second):
		t.Fatal("CompactAll not called within 30 s")
		return nil
	}
}

func TestDefragmentOneAtATime(t *testing.T) {
	g := newGatedCompactor()
	b := New(Config{Compactor: g, StopServing: g})
	callerCtx, cancelCaller := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- b.Defragment(callerCtx) }()
	compactCtx := waitStarted(t, g)

	// A second caller that gives up while waiting gets its context's error
	// and never compacts.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Defragment(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second defragment while one runs: %v", err)
	}
	// A patient one waits for its turn.
	second := make(chan error, 1)
	go func() { second <- b.Defragment(context.Background()) }()

	// The first caller leaving does not stop the work under way.
	cancelCaller()
	if compactCtx.Err() != nil {
		t.Fatalf("the compaction's context ended with its caller's: %v", compactCtx.Err())
	}
	select {
	case <-g.started:
		t.Fatal("a second compaction started while the first runs")
	default:
	}
	g.release <- nil
	if err := <-first; err != nil {
		t.Fatalf("first defragment: %v", err)
	}
	waitStarted(t, g)
	boom := errors.New("disk full")
	g.release <- boom
	if err := <-second; !errors.Is(err, boom) {
		t.Fatalf("second defragment: %v, want the engine's error wrapped", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	want := []string{"suspend", "compact", "resume", "suspend", "compact", "resume"}
	if len(g.events) != len(want) {
		t.Fatalf("events %v, want %v", g.events, want)
	}
	for i := range want {
		if g.events[i] != want[i] {
			t.Fatalf("events %v, want %v", g.events, want)
		}
	}
}

func TestDefragmentMemoryEngine(t *testing.T) {
	if err := New(Config{}).Defragment(context.Background()); err == nil {
		t.Fatal("defragment without an engine succeeded")
	}
	eng := memory.New()
	b := New(Config{Compactor: eng}) // no health gate: nothing to suspend
	if err := b.Defragment(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = eng.Close()
	if err := b.Defragment(context.Background()); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("defragment of a closed engine: %v", err)
	}
}

// sizedCompactor is a Compactor of a store of a given size and size in
// use; it counts its compactions.
type sizedCompactor struct {
	usage     storage.Usage
	compacted int
}

func (s *sizedCompactor) CompactAll(context.Context) error { s.compacted++; return nil }
func (s *sizedCompactor) Usage() storage.Usage             { return s.usage }

func TestBootstrapDefrag(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name         string
		size, inUse  int64
		thresholdMiB uint
		want         int
		wantLog      string
	}{
		{"off", 100 * mib, 0, 0, 0, ""},
		{"frees less than the threshold", 100 * mib, 95 * mib, 10, 0, "Skipping defragmentation"},
		{"frees the threshold", 100 * mib, 90 * mib, 10, 1, "finished defragmenting directory"},
		{"frees more", 100 * mib, 1 * mib, 10, 1, "finished defragmenting directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &sizedCompactor{usage: storage.Usage{SizeBytes: tc.size, LiveBytes: tc.inUse}}
			core, logs := observer.New(zap.InfoLevel)
			if err := BootstrapDefrag(context.Background(), c, tc.thresholdMiB, zap.New(core)); err != nil {
				t.Fatal(err)
			}
			if c.compacted != tc.want {
				t.Errorf("compacted %d times, want %d", c.compacted, tc.want)
			}
			if tc.wantLog == "" && logs.Len() != 0 {
				t.Errorf("logged %v, want nothing", logs.All())
			}
			if tc.wantLog != "" && logs.FilterMessage(tc.wantLog).Len() != 1 {
				t.Errorf("logged %v, want %q", logs.All(), tc.wantLog)
			}
		})
	}
}
