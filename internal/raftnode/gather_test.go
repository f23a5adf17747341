package raftnode

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// manualTimers gives a gathering timers that fire only when the test fires
// them; each timer asked for is sent on made, in order.
type manualTimers struct{ made chan *manualTimer }

type manualTimer struct {
	d time.Duration
	c chan time.Time
}

func (m *manualTimers) after(d time.Duration) (<-chan time.Time, func() bool) {
	tm := &manualTimer{d: d, c: make(chan time.Time, 1)}
	m.made <- tm
	return tm.c, func() bool { return true }
}

func (tm *manualTimer) fire() { tm.c <- time.Time{} }

// next returns the next timer a gathering asked for.
func (m *manualTimers) next(ctx context.Context, t *testing.T, what string) *manualTimer {
	t.Helper()
	select {
	case tm := <-m.made:
		return tm
	case <-ctx.Done():
		t.Fatalf("no timer for %s was asked for", what)
		return nil
	}
}

// gathering is a gated single member (Gather.Min 8, timers the test fires)
// whose run goroutine is inside a gathering that followed a synced save of
// nine entries.
type gathering struct {
	*gated
	timers       *manualTimers
	window, idle *manualTimer
	synced       uint64 // the synced log's end when the gathering began
}

func startGathering(ctx context.Context, t *testing.T) *gathering {
	t.Helper()
	mt := &manualTimers{made: make(chan *manualTimer, 16)}
	gm := startGatedWith(t, false, Gather{Window: time.Hour, Idle: time.Minute, Min: 8, After: mt.after})
	gm.lead(ctx, t)
	// Saves of one entry each are no queue of writers: no gathering. (Two
	// calls on raft after the last one: were a gathering started, the
	// second would be served inside it, after its timers were asked for.)
	for i := range 3 {
		if err := gm.n.Propose(ctx, []byte(fmt.Sprintf("small%d", i))); err != nil {
			t.Fatal(err)
		}
		<-gm.applied
	}
	gm.n.Status()
	gm.n.Status()
	if len(mt.made) != 0 {
		t.Fatal("a save of one entry started a gathering (Gather.Min is 8)")
	}
	// Nine proposals queued behind a held save are saved by one synced
	// commit; what it committed is handed to the apply loop before the
	// gathering waits, so their proposers get their answers meanwhile.
	first := holdSave(ctx, t, gm.n, gm.g, "held")
	const k = 9
	results := make(chan error, k)
	for i := range k {
		go func() { results <- gm.n.Propose(ctx, []byte(fmt.Sprintf("q%d", i))) }()
	}
	waitQueued(ctx, t, gm.n, k)
	gm.g.open()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range k {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < k+1; i++ {
		select {
		case <-gm.applied:
		case <-ctx.Done():
			t.Fatalf("applied %d of the %d entries the large save committed, with the gathering's timers unfired", i, k+1)
		}
	}
	gs := &gathering{gated: gm, timers: mt}
	gs.window = mt.next(ctx, t, "the window")
	gs.idle = mt.next(ctx, t, "the idle period")
	if gs.window.d != time.Hour || gs.idle.d != time.Minute {
		t.Fatalf("timers of %v and %v, want the window (1h) and then the idle period (1m)", gs.window.d, gs.idle.d)
	}
	if got := gm.g.largestSave(); got < k {
		t.Fatalf("largest synced save %d entries, want the %d queued proposals in one", got, k)
	}
	gs.synced = gm.g.syncedIndex()
	return gs
}

// queue proposes data and returns once the proposal waits in the queue;
// its result arrives on the returned channel once the run goroutine took it.
func (gs *gathering) queue(ctx context.Context, t *testing.T, data string) chan error {
	t.Helper()
	res := make(chan error, 1)
	go func() { res <- gs.n.Propose(ctx, []byte(data)) }()
	waitQueued(ctx, t, gs.n, 1)
	return res
}

func taken(ctx context.Context, t *testing.T, res chan error) {
	t.Helper()
	select {
	case err := <-res:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the queued proposal was not taken")
	}
}

// notSaved fails if anything was saved or applied since the gathering began.
func (gs *gathering) notSaved(t *testing.T, when string) {
	t.Helper()
	if s := gs.g.syncedIndex(); s != gs.synced {
		t.Fatalf("%s: the synced log grew from %d to %d during the gathering", when, gs.synced, s)
	}
	select {
	case e := <-gs.applied:
		t.Fatalf("%s: %q applied during the gathering", when, e.Data)
	default:
	}
}

func (gs *gathering) waitApplied(ctx context.Context, t *testing.T, data string) {
	t.Helper()
	select {
	case e := <-gs.applied:
		if string(e.Data) != data {
			t.Fatalf("applied %q, want %q", e.Data, data)
		}
	case <-ctx.Done():
		t.Fatalf("%q was not applied", data)
	}
	if s := gs.g.syncedIndex(); s <= gs.synced {
		t.Fatalf("%q applied with the synced log still ending at %d", data, s)
	}
	select {
	case v := <-gs.violations:
		t.Fatal(v)
	default:
	}
}

// TestGatheringWaitsWhileProposalsArrive: after a leader's synced save of
// at least Gather.Min entries, proposals queue and are taken once per idle
// period, but not saved while each period brings some; a period that
// brings none ends the gathering, and what it took is saved and applied.
func TestGatheringWaitsWhileProposalsArrive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gs := startGathering(ctx, t)
	late := gs.queue(ctx, t, "late")
	gs.notSaved(t, "with a proposal queued")
	gs.idle.fire()
	taken(ctx, t, late)
	// That period brought a proposal: the gathering asks for the next one
	// (and so is still running when the test looks).
	idle2 := gs.timers.next(ctx, t, "a second idle period")
	gs.notSaved(t, "after an idle period brought a proposal")
	idle2.fire()
	gs.waitApplied(ctx, t, "late")
}

// TestGatheringEnds: proposals arriving without a pause do not hold the
// save back longer than Gather.Window, and a linearizable read neither
// waits for a gathering nor lets it go on (what queued is saved at once).
func TestGatheringEnds(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  func(ctx context.Context, t *testing.T, gs *gathering)
	}{
		{"WhenItsWindowCloses", func(_ context.Context, _ *testing.T, gs *gathering) { gs.window.fire() }},
		{"ForARead", func(ctx context.Context, t *testing.T, gs *gathering) {
			if _, err := gs.n.ReadIndex(ctx); err != nil {
				t.Fatalf("ReadIndex during a gathering: %v", err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			gs := startGathering(ctx, t)
			late := gs.queue(ctx, t, "late")
			gs.notSaved(t, "with a proposal queued")
			tt.end(ctx, t, gs)
			taken(ctx, t, late)
			gs.waitApplied(ctx, t, "late")
		})
	}
}

// TestLeaderWithFollowersDoesNotGather: in a group of three the leader's
// commit index rises with its followers' answers, not at its own save, and
// a gathering would hold back its next MsgApp: it never gathers, even with
// Gather.Min at one entry.
func TestLeaderWithFollowersDoesNotGather(t *testing.T) {
	mt := &manualTimers{made: make(chan *manualTimer, 64)}
	_, members := startClusterWith(t, Gather{Window: time.Hour, Idle: time.Hour, Min: 1, After: mt.after}, 1, 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Member 1 alone ticks, at a pace that lets its messages through (a
	// leader ticked faster than its followers answer steps down).
	lead := uint64(0)
	for lead == 0 {
		select {
		case <-time.After(2 * time.Millisecond):
			tick(ctx, members[1])
		case <-ctx.Done():
			t.Fatal("no leader elected")
		}
		if l := members[1].node.Leader(); l != 0 && members[2].node.Leader() == l && members[3].node.Leader() == l {
			lead = l
		}
	}
	for i := range 3 {
		data := fmt.Sprintf("w%d", i)
		res := make(chan error, 1)
		go func() { res <- members[lead].node.Propose(ctx, []byte(data)) }()
		// Each save was decided on before its entry could be committed
		// (a follower's answer comes after the leader's Advance).
		waitApplied(ctx, t, members, members[lead], data)
		if err := <-res; err != nil {
			t.Fatal(err)
		}
	}
	if len(mt.made) != 0 {
		t.Fatalf("a member of a group of three gathered (%d timers asked for)", len(mt.made))
	}
}
