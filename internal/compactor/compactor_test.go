package compactor

import (
	"context"
	"sync"
	"testing"
	"time"
)

type fakeTarget struct {
	mu        sync.Mutex
	rev       int64
	leader    bool
	compacted []int64
	done      chan int64
	reads     chan struct{} // one per Rev call: tells the test a tick is being handled
}

func (f *fakeTarget) Rev() int64 {
	f.mu.Lock()
	r := f.rev
	f.mu.Unlock()
	f.reads <- struct{}{}
	return r
}
func (f *fakeTarget) IsLeader() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}
func (f *fakeTarget) Compact(_ context.Context, rev int64) error {
	f.mu.Lock()
	f.compacted = append(f.compacted, rev)
	f.mu.Unlock()
	f.done <- rev
	return nil
}

// harness drives Run with a fake clock: each step sets the revision, moves
// time forward and ticks once, then reports whether a compaction happened.
type harness struct {
	t    *testing.T
	tick chan time.Time
	now  time.Time
	tgt  *fakeTarget
}

func start(t *testing.T, cfg Config) *harness {
	h := &harness{t: t, tick: make(chan time.Time), now: time.Unix(1000, 0), tgt: &fakeTarget{leader: true, done: make(chan int64, 16), reads: make(chan struct{})}}
	cfg.Tick = h.tick
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() { Run(ctx, cfg, h.tgt); close(finished) }()
	t.Cleanup(func() { cancel(); <-finished })
	return h
}

func TestPeriodicKeepsTheRetentionWindow(t *testing.T) {
	h := start(t, Config{Mode: "periodic", Period: 10 * time.Minute})
	// Samples every minute at revisions 100, 200, ...; nothing is old
	// enough until ten minutes have passed since the first sample.
	var got int64
	for i := int64(1); i <= 10; i++ {
		got = h.stepSync(time.Minute, i*100)
		if got != 0 {
			t.Fatalf("compacted at %d after %d minutes; history younger than the period must stay", got, i)
		}
	}
	if got = h.stepSync(time.Minute, 1100); got != 100 {
		t.Fatalf("after 11 minutes compacted at %d, want 100 (the revision of 10 minutes ago)", got)
	}
	if got = h.stepSync(time.Minute, 1200); got != 200 {
		t.Fatalf("next minute compacted at %d, want 200", got)
	}
}

func TestRevisionModeKeepsLastN(t *testing.T) {
	h := start(t, Config{Mode: "revision", Revisions: 1000})
	if got := h.stepSync(revisionCheckInterval, 500); got != 0 {
		t.Fatalf("compacted at %d with fewer revisions than retained", got)
	}
	if got := h.stepSync(revisionCheckInterval, 5000); got != 4000 {
		t.Fatalf("compacted at %d, want 4000", got)
	}
	if got := h.stepSync(revisionCheckInterval, 5000); got != 0 {
		t.Fatalf("compacted again at %d with no new revisions", got)
	}
}

func TestFollowerDoesNotCompact(t *testing.T) {
	h := start(t, Config{Mode: "revision", Revisions: 10})
	h.tgt.mu.Lock()
	h.tgt.leader = false
	h.tgt.mu.Unlock()
	if got := h.stepSync(revisionCheckInterval, 500); got != 0 {
		t.Fatalf("a follower compacted at %d", got)
	}
}

// stepSync is step followed by a barrier tick-free wait: Compact sends on a
// buffered channel before Run returns to select, so after the next tick is
// accepted any compaction of this step is visible.
func (h *harness) stepSync(d time.Duration, rev int64) int64 {
	h.now = h.now.Add(d)
	h.tgt.mu.Lock()
	h.tgt.rev = rev
	before := len(h.tgt.compacted)
	h.tgt.mu.Unlock()
	h.tick <- h.now
	<-h.tgt.reads
	// Run handles one tick fully before it takes the next, so once a second
	// tick at the same time is taken (and its revision read, so nothing of
	// this step is still running), any compaction of this step is recorded.
	// The second tick cannot compact on its own: its target is not beyond
	// the one just done.
	h.tick <- h.now
	<-h.tgt.reads
	h.tgt.mu.Lock()
	defer h.tgt.mu.Unlock()
	for len(h.tgt.done) > 0 {
		<-h.tgt.done
	}
	if len(h.tgt.compacted) > before {
		return h.tgt.compacted[before]
	}
	return 0
}
