package leadership

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"

	"github.com/metastore/metastore/internal/membership"
)

// fakeRaft leads as self until TransferLeadership, which makes the target
// lead at once when obey is set (raft completing the transfer) and does
// nothing otherwise (raft dropping it).
type fakeRaft struct {
	self   uint64
	obey   bool
	status raft.Status

	mu       sync.Mutex
	lead     uint64        // guarded by mu
	changed  chan struct{} // guarded by mu
	transfer []uint64      // guarded by mu
}

func newFakeRaft(self, lead uint64, obey bool) *fakeRaft {
	return &fakeRaft{self: self, lead: lead, obey: obey, changed: make(chan struct{})}
}

func (f *fakeRaft) IsLeader() bool { return f.Leader() == f.self }
func (f *fakeRaft) Leader() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lead
}

func (f *fakeRaft) LeaderChanged() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *fakeRaft) TransferLeadership(_ context.Context, target uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.transfer = append(f.transfer, target)
	if f.obey {
		f.lead = target
		close(f.changed)
		f.changed = make(chan struct{})
	}
}

func (f *fakeRaft) Status() raft.Status { return f.status }

func (f *fakeRaft) transfers() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.transfer...)
}

type memberMap map[uint64]*membership.Member

func (m memberMap) Member(id uint64) *membership.Member { return m[id] }

type activeSet map[uint64]bool

func (a activeSet) IsActive(id uint64) bool { return a[id] }

func newMover(r *fakeRaft, active activeSet) *Mover {
	return New(Config{
		Self: 1, Raft: r, Peers: active,
		Members:        memberMap{1: {ID: 1}, 2: {ID: 2}, 3: {ID: 3}, 4: {ID: 4, IsLearner: true}},
		RequestTimeout: time.Minute, ElectionTimeout: time.Minute,
	})
}

func TestMoveLeaderRefusals(t *testing.T) {
	cases := []struct {
		name   string
		lead   uint64
		target uint64
		want   error
	}{
		{"not the leader", 2, 3, rpctypes.ErrGRPCNotLeader},
		{"to itself", 1, 1, nil},
		{"unknown member", 1, 9, rpctypes.ErrGRPCBadLeaderTransferee},
		{"learner", 1, 4, rpctypes.ErrGRPCBadLeaderTransferee},
	}
	for _, c := range cases {
		r := newFakeRaft(1, c.lead, true)
		if err := newMover(r, nil).MoveLeader(context.Background(), c.target); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if got := r.transfers(); len(got) != 0 {
			t.Errorf("%s: transfer to %v started", c.name, got)
		}
	}
}

func TestMoveLeaderReturnsOnceTargetLeads(t *testing.T) {
	r := newFakeRaft(1, 1, true)
	if err := newMover(r, nil).MoveLeader(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	if r.Leader() != 3 {
		t.Fatalf("leader %d after MoveLeader, want 3", r.Leader())
	}
}

func TestMoveLeaderDroppedTransferTimesOut(t *testing.T) {
	r := newFakeRaft(1, 1, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the deadline has passed: raft never completes the transfer
	err := newMover(r, nil).MoveLeader(ctx, 2)
	if !errors.Is(err, ErrTransferTimeout) {
		t.Fatalf("err = %v, want %v", err, ErrTransferTimeout)
	}
	if got := r.transfers(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("transfers %v, want [2]", got)
	}
}

func progress(match uint64, opts ...func(*tracker.Progress)) tracker.Progress {
	p := tracker.Progress{Match: match, RecentActive: true, State: tracker.StateReplicate}
	for _, o := range opts {
		o(&p)
	}
	return p
}

var (
	learner  = func(p *tracker.Progress) { p.IsLearner = true }
	inactive = func(p *tracker.Progress) { p.RecentActive = false }
	snapshot = func(p *tracker.Progress) { p.State = tracker.StateSnapshot }
)

func TestTransferee(t *testing.T) {
	all := activeSet{1: true, 2: true, 3: true, 4: true}
	cases := []struct {
		name   string
		prs    map[uint64]tracker.Progress
		active activeSet
		want   uint64
	}{
		{"longest match wins", map[uint64]tracker.Progress{1: progress(9), 2: progress(5), 3: progress(7)}, all, 3},
		{"tie goes to the lower ID", map[uint64]tracker.Progress{1: progress(9), 2: progress(7), 3: progress(7)}, all, 2},
		{"learner passed over", map[uint64]tracker.Progress{1: progress(9), 2: progress(5), 4: progress(9, learner)}, all, 2},
		{"not recently active passed over", map[uint64]tracker.Progress{1: progress(9), 2: progress(5), 3: progress(9, inactive)}, all, 2},
		{"being sent a snapshot passed over", map[uint64]tracker.Progress{1: progress(9), 2: progress(5), 3: progress(0, snapshot)}, all, 2},
		{"peer connection down passed over", map[uint64]tracker.Progress{1: progress(9), 2: progress(5), 3: progress(9)}, activeSet{2: true}, 2},
		{"only itself", map[uint64]tracker.Progress{1: progress(9)}, all, 0},
		{"nobody reachable", map[uint64]tracker.Progress{1: progress(9), 2: progress(9), 3: progress(9)}, activeSet{}, 0},
	}
	for _, c := range cases {
		got, ok := Transferee(raft.Status{Progress: c.prs}, 1, c.active.IsActive)
		if got != c.want || ok != (c.want != 0) {
			t.Errorf("%s: Transferee = %d, %v; want %d", c.name, got, ok, c.want)
		}
	}
}

func TestHandOff(t *testing.T) {
	st := raft.Status{Progress: map[uint64]tracker.Progress{1: progress(9), 2: progress(5), 3: progress(8)}}
	cases := []struct {
		name   string
		lead   uint64
		active activeSet
		want   []uint64
	}{
		{"leader hands off to the best follower", 1, activeSet{2: true, 3: true}, []uint64{3}},
		{"a follower does nothing", 2, activeSet{2: true, 3: true}, nil},
		{"no reachable follower", 1, activeSet{}, nil},
	}
	for _, c := range cases {
		r := newFakeRaft(1, c.lead, true)
		r.status = st
		newMover(r, c.active).HandOff(context.Background())
		if got := r.transfers(); len(got) != len(c.want) || (len(got) == 1 && got[0] != c.want[0]) {
			t.Errorf("%s: transfers %v, want %v", c.name, got, c.want)
		}
	}
}

// A hand-off that raft drops ends by itself (two election timeouts) and
// lets the stop go on.
func TestHandOffBounded(t *testing.T) {
	r := newFakeRaft(1, 1, false)
	r.status = raft.Status{Progress: map[uint64]tracker.Progress{1: progress(9), 2: progress(9)}}
	m := New(Config{Self: 1, Raft: r, Peers: activeSet{2: true}, Members: memberMap{},
		RequestTimeout: time.Minute, ElectionTimeout: time.Millisecond})
	m.HandOff(context.Background())
	if r.Leader() != 1 {
		t.Fatalf("leader %d", r.Leader())
	}
}

type tickRaft struct {
	advanced []int
	done     chan struct{}
}

func (r *tickRaft) AdvanceTicks(n int)    { r.advanced = append(r.advanced, n) }
func (r *tickRaft) Done() <-chan struct{} { return r.done }

type tickPeers map[uint64]bool

func (p tickPeers) Peers() []uint64 {
	var out []uint64
	for id := range p {
		out = append(out, id)
	}
	return out
}

func (p tickPeers) ActiveSince(id uint64) time.Time {
	if p[id] {
		return time.Unix(1, 0)
	}
	return time.Time{}
}

func TestAdvanceElectionTicks(t *testing.T) {
	cases := []struct {
		name     string
		enabled  bool
		peers    tickPeers
		deadline bool // the 5 s bound has passed before the first poll
		want     []int
	}{
		{"two peers connected: advance to two ticks before the timeout", true, tickPeers{2: true, 3: true}, false, []int{8}},
		{"one of two peers connected: wait until the bound", true, tickPeers{2: true, 3: false}, true, nil},
		{"disabled", false, tickPeers{2: true, 3: true}, false, nil},
		{"single member", true, tickPeers{}, false, nil},
	}
	for _, c := range cases {
		r := &tickRaft{done: make(chan struct{})}
		poll := make(chan time.Time, 1)
		deadline := make(chan time.Time, 1)
		if c.deadline {
			deadline <- time.Time{}
		} else {
			poll <- time.Time{}
		}
		got := AdvanceElectionTicks(TickConfig{Self: 1, Raft: r, Peers: c.peers, Enabled: c.enabled,
			ElectionTicks: 10, HeartbeatInterval: 100 * time.Millisecond, Poll: poll, Deadline: deadline})
		if got != (len(c.want) > 0) || len(r.advanced) != len(c.want) || (len(c.want) == 1 && r.advanced[0] != c.want[0]) {
			t.Errorf("%s: advanced %v (reported %v), want %v", c.name, r.advanced, got, c.want)
		}
	}
}

// A member that stops while it waits for its peers gives up at once.
func TestAdvanceElectionTicksStops(t *testing.T) {
	r := &tickRaft{done: make(chan struct{})}
	stop := make(chan struct{})
	close(stop)
	if AdvanceElectionTicks(TickConfig{Raft: r, Peers: tickPeers{2: false}, Enabled: true, ElectionTicks: 10,
		Stop: stop, Poll: make(chan time.Time), Deadline: make(chan time.Time)}) {
		t.Fatal("advanced")
	}
}
