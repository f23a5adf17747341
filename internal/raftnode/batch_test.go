package raftnode

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

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
	for len(n.propc) < k {
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d proposals queued", len(n.propc), k)
		case <-time.After(time.Millisecond):
		}
	}
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
	for len(n.propc) < 1 {
		select {
		case <-ctx.Done():
			t.Fatal("the proposal was not queued")
		case <-time.After(time.Millisecond):
		}
	}
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
	for len(members[2].node.propc) < 1 {
		select {
		case <-ctx.Done():
			t.Fatal("the proposal was not queued")
		case <-time.After(time.Millisecond):
		}
	}
	select {
	case err := <-proposed:
		t.Fatalf("Propose returned %v with no leader, want it to wait", err)
	default:
	}
	// Tick member 1 alone until it campaigns and wins.
	for members[2].node.Leader() == 0 {
		select {
		case members[1].tick <- time.Time{}:
		case <-ctx.Done():
			t.Fatal("no leader elected")
		}
	}
	if err := <-proposed; err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{1, 2, 3} {
		select {
		case e := <-members[id].applied:
			if string(e.Data) != "during the election" {
				t.Fatalf("member %d applied %q", id, e.Data)
			}
		case <-ctx.Done():
			t.Fatalf("member %d did not apply the proposal", id)
		}
	}
}
