package raftnode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// gatedLeader starts a gated single member and waits until it leads and
// applied a first proposal.
func gatedLeader(t *testing.T, ctx context.Context) (*Node, *syncGate, chan *raftpb.Entry) {
	t.Helper()
	gm := startGated(t, false)
	gm.lead(ctx, t)
	return gm.n, gm.g, gm.applied
}

// holdSave proposes data while synced saves are held and returns once the
// save of its entry is waiting; the proposal's result arrives on the
// returned channel.
func holdSave(ctx context.Context, t *testing.T, n *Node, g *syncGate, data string) chan error {
	t.Helper()
	g.hold()
	res := make(chan error, 1)
	go func() { res <- n.Propose(ctx, []byte(data)) }()
	select {
	case <-g.blocked:
	case <-ctx.Done():
		t.Fatal("no synced save was attempted")
	}
	return res
}

// TestProposalsQueuedDuringSaveAreBatched: proposals that arrive while the
// run goroutine persists a Ready wait in the queue, are then stepped
// together (one MsgProp) and saved by the next Ready in one synced commit,
// and every proposer gets its answer and its entry applied.
func TestProposalsQueuedDuringSaveAreBatched(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, g, applied := gatedLeader(t, ctx)
	first := holdSave(ctx, t, n, g, "held")
	const k = 20
	results := make(chan error, k)
	for i := range k {
		go func() { results <- n.Propose(ctx, []byte(fmt.Sprintf("q%d", i))) }()
	}
	// Wait (bounded by ctx) until all k wait in the queue behind the save.
	waitQueued(ctx, t, n, k)
	g.open()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range k {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < k+1 {
		select {
		case e := <-applied:
			seen[string(e.Data)] = true
		case <-ctx.Done():
			t.Fatalf("applied %d of %d entries", len(seen), k+1)
		}
	}
	if got := g.largestSave(); got < k {
		t.Fatalf("the %d queued proposals were saved in commits of at most %d entries, want one commit", k, got)
	}
}

// TestAbandonedProposalIsNotProposed: a proposer whose ctx ends while its
// proposal still waits in the queue gets ctx's error, and its data never
// reaches the log (raft.Node's guarantee, which the queue must keep).
func TestAbandonedProposalIsNotProposed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, g, applied := gatedLeader(t, ctx)
	first := holdSave(ctx, t, n, g, "held")
	pctx, pcancel := context.WithCancel(ctx)
	abandoned := make(chan error, 1)
	go func() { abandoned <- n.Propose(pctx, []byte("abandoned")) }()
	waitQueued(ctx, t, n, 1)
	pcancel()
	if err := <-abandoned; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned proposal returned %v, want context.Canceled", err)
	}
	g.open()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := n.Propose(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"held", "after"} {
		select {
		case e := <-applied:
			if string(e.Data) != want {
				t.Fatalf("applied %q, want %q (an abandoned proposal must not be)", e.Data, want)
			}
		case <-ctx.Done():
			t.Fatalf("%q not applied", want)
		}
	}
}

// TestProposalWaitsForALeader: a proposal made while no leader is known
// waits (raft.Node's behaviour, which etcd clients see as a write that takes
// longer during an election, not as an error) and is committed once a
// leader is elected.
func TestProposalWaitsForALeader(t *testing.T) {
	_, members := startCluster(t, 1, 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// No member has ticked: none can have a leader yet.
	proposed := make(chan error, 1)
	go func() { proposed <- members[2].node.Propose(ctx, []byte("during the election")) }()
	waitQueued(ctx, t, members[2].node, 1)
	select {
	case err := <-proposed:
		t.Fatalf("Propose returned %v with no leader, want it to wait", err)
	default:
	}
	// Tick member 2 alone until it campaigns and wins: the proposal is then
	// in the leader's own log, and only the leader ticks from here on (a
	// leader that stepped down campaigns again; nobody else does).
	for members[2].node.Leader() != 2 {
		select {
		case members[2].tick <- time.Time{}:
		case <-ctx.Done():
			t.Fatal("member 2 was not elected")
		}
	}
	if err := <-proposed; err != nil {
		t.Fatal(err)
	}
	waitApplied(ctx, t, members, members[2], "during the election")
}

// waitApplied waits until every member applied data as its next entry,
// ticking lead (only) at a pace that lets messages through between ticks:
// a follower whose progress is paused learns the commit index from the
// leader's heartbeats, and no other member starts an election.
func waitApplied(ctx context.Context, t *testing.T, members map[uint64]*member, lead *member, data string) {
	t.Helper()
	for id, m := range members {
		for done := false; !done; {
			select {
			case e := <-m.applied:
				if string(e.Data) != data {
					t.Fatalf("member %d applied %q, want %q", id, e.Data, data)
				}
				done = true
			case <-time.After(5 * time.Millisecond):
				tick(ctx, lead)
			case <-ctx.Done():
				t.Fatalf("member %d did not apply %q", id, data)
			}
		}
	}
}

func tick(ctx context.Context, m *member) {
	select {
	case m.tick <- time.Time{}:
	case <-ctx.Done():
	}
}

// TestProposalDroppedForWantOfALeaderIsRetried: raft may lose its leader
// before the run goroutine learns of it from a Ready (here a follower
// forgets its leader just before it takes a queued proposal). raft drops
// the proposal; Propose must not fail with "proposal dropped" but wait for
// a leader and propose again, as raft.Node's proposers wait.
func TestProposalDroppedForWantOfALeaderIsRetried(t *testing.T) {
	_, members := startCluster(t, 1, 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for members[2].node.Leader() == 0 || members[3].node.Leader() == 0 {
		select {
		case members[1].tick <- time.Time{}:
		case <-ctx.Done():
			t.Fatal("no leader elected")
		}
	}
	lead := members[2].node.Leader()
	var f uint64 = 2
	if lead == 2 {
		f = 3
	}
	fn := members[f].node
	// Hold f's run goroutine in a function; once let go it forgets its
	// leader and takes the proposal queued meanwhile.
	started, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release) // runs before the members stop
	if !fn.do(ctx, func(rn *raft.RawNode) {
		close(started)
		<-gate
		if err := rn.ForgetLeader(); err != nil {
			t.Errorf("forget leader: %v", err)
		}
		// Take the queued proposal now, before any message from the
		// leader could tell this member of it again.
		fn.propose(<-fn.propc)
	}) {
		t.Fatal("the run goroutine did not take the function")
	}
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the run goroutine did not run the function")
	}
	proposed := make(chan error, 1)
	go func() { proposed <- fn.Propose(ctx, []byte("after the leader was forgotten")) }()
	waitQueued(ctx, t, fn, 1)
	release()
	// The leader's heartbeats tell f of it again (only the leader ticks: a
	// leader that stepped down campaigns again, nobody else does). Propose
	// returns once f forwarded the proposal to it; whether the leader still
	// leads when it arrives is raft's business, as for any forwarded
	// proposal, so commitment is not checked here.
	for done := false; !done; {
		select {
		case err := <-proposed:
			if err != nil {
				t.Fatalf("Propose returned %v, want it to wait for the leader and succeed", err)
			}
			done = true
		case <-time.After(5 * time.Millisecond):
			tick(ctx, members[lead])
		case <-ctx.Done():
			t.Fatal("the proposal was not accepted")
		}
	}
}

// waitQueued waits (polling, bounded by ctx) until k proposals wait in n's
// queue.
func waitQueued(ctx context.Context, t *testing.T, n *Node, k int) {
	t.Helper()
	for len(n.propc) < k {
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d proposals queued", len(n.propc), k)
		case <-time.After(time.Millisecond):
		}
	}
}
