package downgrade

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
)

type fakeCluster struct {
	leader   bool
	state    Info
	versions map[uint64]string
	ok       bool
	finished chan struct{}
	checks   int // written by the monitor goroutine, read after it returned
}

func (f *fakeCluster) IsLeader() bool       { return f.leader }
func (f *fakeCluster) State() (Info, error) { return f.state, nil }
func (f *fakeCluster) MemberVersions(context.Context) (map[uint64]string, bool) {
	f.checks++
	return f.versions, f.ok
}
func (f *fakeCluster) Finish(context.Context) error {
	f.state.Enabled = false // as the replicated cancel does
	close(f.finished)
	return nil
}

// run ticks the monitor n times and reports whether it finished the
// downgrade; checks counts the version checks it made.
func run(t *testing.T, f *fakeCluster, n int) (finished bool, checks int) {
	t.Helper()
	f.finished = make(chan struct{})
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Monitor(ctx, tick, f, zap.NewNop()); close(done) }()
	// The tick channel is unbuffered: once the last send returns, the
	// monitor is handling it, and it finishes that before seeing cancel.
	for range n {
		tick <- time.Now()
	}
	cancel()
	<-done
	select {
	case <-f.finished:
		finished = true
	default:
	}
	return finished, f.checks
}

func TestMonitorFinishesOnceAllMembersRunTheTarget(t *testing.T) {
	on := Info{Enabled: true, Target: "3.6.0"}
	for _, tc := range []struct {
		name     string
		f        fakeCluster
		finished bool
		checks   int
	}{
		{"all at target", fakeCluster{leader: true, state: on, ok: true, versions: map[uint64]string{1: "3.6.9", 2: "3.6.0"}}, true, 1},
		{"one member newer", fakeCluster{leader: true, state: on, ok: true, versions: map[uint64]string{1: "3.6.9", 2: "3.7.3"}}, false, 2},
		{"a member unreachable", fakeCluster{leader: true, state: on, ok: false, versions: map[uint64]string{1: "3.6.0"}}, false, 2},
		{"not the leader", fakeCluster{leader: false, state: on, ok: true, versions: map[uint64]string{1: "3.6.0"}}, false, 0},
		{"no downgrade", fakeCluster{leader: true, ok: true, versions: map[uint64]string{1: "3.6.0"}}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			finished, checks := run(t, &tc.f, 2)
			if finished != tc.finished || checks != tc.checks {
				t.Errorf("finished %v after %d checks, want %v after %d", finished, checks, tc.finished, tc.checks)
			}
		})
	}
}
