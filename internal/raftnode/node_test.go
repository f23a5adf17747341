package raftnode

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage/memory"
)

// simNet is a simulated network between nodes: messages are delivered by
// Step on the receiver, unless the link between sender and receiver is cut.
type simNet struct {
	mu    sync.Mutex
	nodes map[uint64]*Node
	cut   map[[2]uint64]bool
}

func (n *simNet) transport(from uint64) Transport { return &simTransport{net: n, from: from} }

func (n *simNet) partition(id uint64, isolated bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for other := range n.nodes {
		if other != id {
			n.cut[[2]uint64{id, other}] = isolated
			n.cut[[2]uint64{other, id}] = isolated
		}
	}
}

type simTransport struct {
	net  *simNet
	from uint64
}

func (t *simTransport) Send(msgs []*raftpb.Message) {
	for _, m := range msgs {
		t.net.mu.Lock()
		to := t.net.nodes[m.GetTo()]
		cut := t.net.cut[[2]uint64{t.from, m.GetTo()}]
		t.net.mu.Unlock()
		if to == nil || cut {
			continue // dropped, as a real network may
		}
		// Step must not block the sender's Ready loop.
		go func() { _ = to.Step(context.Background(), m) }()
	}
}

type member struct {
	node    *Node
	tick    chan time.Time
	applied chan *raftpb.Entry
}

// startMember starts a node whose applied entries are forwarded to a
// channel the test reads, and whose clock the test advances.
func startMember(t *testing.T, id uint64, peers []raft.Peer, tr Transport) *member {
	t.Helper()
	log, err := raftlog.Open(memory.New())
	if err != nil {
		t.Fatal(err)
	}
	return startMemberOn(t, id, peers, tr, log, 0)
}

// startMemberOn is startMember on the given log, restarting after applied.
func startMemberOn(t *testing.T, id uint64, peers []raft.Peer, tr Transport, log *raftlog.Storage, applied uint64) *member {
	t.Helper()
	return startMemberWith(t, id, peers, tr, log, applied, Gather{})
}

// startMemberWith is startMemberOn with a group commit configured.
func startMemberWith(t *testing.T, id uint64, peers []raft.Peer, tr Transport, log *raftlog.Storage, applied uint64, gather Gather) *member {
	t.Helper()
	m := &member{tick: make(chan time.Time), applied: make(chan *raftpb.Entry, 1024)}
	var err error
	m.node, err = Start(Config{ID: id, Peers: peers, ElectionTicks: 10, HeartbeatTicks: 1, Tick: m.tick, Storage: log, Applied: applied,
		Transport: tr, PreVote: true, Logger: zaptest.NewLogger(t), Gather: gather})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for ap := range m.node.Applies() {
			for _, e := range ap.Entries {
				if e.GetType() == raftpb.EntryType_EntryConfChange {
					var cc raftpb.ConfChange
					if err := proto.Unmarshal(e.Data, &cc); err == nil {
						log.SetConfState(m.node.ApplyConfChange(&cc))
					}
				}
				if e.GetType() == raftpb.EntryType_EntryNormal && len(e.Data) > 0 {
					m.applied <- e
				}
			}
			ap.Done()
		}
	}()
	t.Cleanup(m.node.Stop)
	return m
}

// startCluster starts a group of the given members on a simulated network.
func startCluster(t *testing.T, ids ...uint64) (*simNet, map[uint64]*member) {
	t.Helper()
	return startClusterWith(t, Gather{}, ids...)
}

// startClusterWith is startCluster with a group commit configured.
func startClusterWith(t *testing.T, gather Gather, ids ...uint64) (*simNet, map[uint64]*member) {
	t.Helper()
	net := &simNet{nodes: map[uint64]*Node{}, cut: map[[2]uint64]bool{}}
	var peers []raft.Peer
	for _, id := range ids {
		peers = append(peers, raft.Peer{ID: id})
	}
	members := map[uint64]*member{}
	for _, id := range ids {
		log, err := raftlog.Open(memory.New())
		if err != nil {
			t.Fatal(err)
		}
		members[id] = startMemberWith(t, id, peers, net.transport(id), log, 0, gather)
	}
	net.mu.Lock()
	for id, m := range members {
		net.nodes[id] = m.node
	}
	net.mu.Unlock()
	return net, members
}

func TestSingleMemberProposeAndRead(t *testing.T) {
	m := startMember(t, 1, []raft.Peer{{ID: 1}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A sole voter campaigns at start: no ticks are needed to elect it.
	waitLeader(ctx, t, m.node, 1)
	for i := 0; i < 50; i++ {
		if err := m.node.Propose(ctx, []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	var last uint64
	for i := 0; i < 50; i++ {
		select {
		case e := <-m.applied:
			if want := fmt.Sprintf("v%d", i); string(e.Data) != want {
				t.Fatalf("applied %q, want %q (order must be kept)", e.Data, want)
			}
			last = e.GetIndex()
		case <-ctx.Done():
			t.Fatalf("only %d of 50 proposals applied", i)
		}
	}
	idx, err := m.node.ReadIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if idx < last {
		t.Fatalf("ReadIndex %d is below the last applied write %d", idx, last)
	}
}

// TestPartitionedLeaderIsReplaced runs three members on a simulated
// network, cuts the leader off, and checks that the others elect a new
// leader that commits, and that the old leader cannot serve a ReadIndex.
func TestPartitionedLeaderIsReplaced(t *testing.T) {
	net, members := startCluster(t, 1, 2, 3)

	// Drive the clocks until a leader emerges. Each round is one tick on
	// every member; the bound keeps a broken build from spinning forever.
	tickAll := func(ids ...uint64) {
		for _, id := range ids {
			members[id].tick <- time.Time{}
		}
	}
	waitLeader := func(among []uint64, not uint64) uint64 {
		for round := 0; round < 2000; round++ {
			tickAll(among...)
			for _, id := range among {
				if l := members[id].node.Leader(); l != 0 && l != not && members[l] != nil {
					agreed := true
					for _, o := range among {
						if members[o].node.Leader() != l {
							agreed = false
						}
					}
					if agreed {
						return l
					}
				}
			}
			time.Sleep(time.Millisecond) // lets Step goroutines deliver between ticks; not waiting on a condition
		}
		t.Fatalf("no leader agreed among %v", among)
		return 0
	}
	all := []uint64{1, 2, 3}
	lead := waitLeader(all, 0)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := members[lead].node.Propose(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	waitApplied(ctx, t, members, members[lead], "before")

	net.partition(lead, true)
	var rest []uint64
	for _, id := range all {
		if id != lead {
			rest = append(rest, id)
		}
	}
	newLead := waitLeader(rest, lead)
	if err := members[newLead].node.Propose(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
	waitApplied(ctx, t, map[uint64]*member{rest[0]: members[rest[0]], rest[1]: members[rest[1]]}, members[newLead], "after")
	// The isolated old leader must not answer a linearizable read.
	rctx, rcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer rcancel()
	go func() {
		for i := 0; i < 30 && rctx.Err() == nil; i++ {
			select {
			case members[lead].tick <- time.Time{}:
			case <-rctx.Done():
			}
		}
	}()
	if _, err := members[lead].node.ReadIndex(rctx); err == nil {
		t.Fatal("an isolated leader served a ReadIndex")
	}
}

// TestCommittedReportedBeforeApply checks Metrics.Committed: every entry
// the apply loop receives was reported committed before, so a commit index
// built from it (etcd_server_proposals_committed_total) is never below the
// applied index, even though the HardState is persisted after the hand-off.
func TestCommittedReportedBeforeApply(t *testing.T) {
	log, err := raftlog.Open(memory.New())
	if err != nil {
		t.Fatal(err)
	}
	var committed atomic.Uint64
	n, err := Start(Config{ID: 1, Peers: []raft.Peer{{ID: 1}}, ElectionTicks: 10, HeartbeatTicks: 1,
		Tick: make(chan time.Time), Storage: log, PreVote: true, Logger: zaptest.NewLogger(t),
		Metrics: Metrics{Committed: func(i uint64) {
			if i < committed.Load() {
				t.Errorf("commit index went back from %d to %d", committed.Load(), i)
			}
			committed.Store(i)
		}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	const proposals = 200
	appliedc := make(chan uint64, 1)
	go func() {
		var last uint64
		for ap := range n.Applies() {
			for _, e := range ap.Entries {
				if c := committed.Load(); e.GetIndex() > c {
					t.Errorf("entry %d handed to apply while the reported commit index is %d", e.GetIndex(), c)
				}
				if e.GetType() == raftpb.EntryType_EntryNormal && len(e.Data) > 0 {
					last++
				}
			}
			ap.Done()
			if last == proposals {
				appliedc <- last
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitLeader(ctx, t, n, 1)
	for i := range proposals {
		if err := n.Propose(ctx, []byte(fmt.Sprintf("p%d", i))); err != nil {
			t.Fatalf("propose %d: %v", i, err)
		}
	}
	select {
	case <-appliedc:
	case <-ctx.Done():
		t.Fatal("proposals not applied")
	}
}

// TestRestartWithAppliedAheadOfSavedCommit: the apply loop commits its batch
// (and the applied index) concurrently with the Ready loop's save of the
// HardState that raised the commit index, neither synced; a crash can keep
// the first and lose the second. raft refuses (panics) to start with an
// applied index above its commit index, so Start must clamp it; the entries
// in between are committed again and delivered, and the applier skips what
// it already has.
func TestRestartWithAppliedAheadOfSavedCommit(t *testing.T) {
	eng := memory.New()
	log, err := raftlog.Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := startMemberOn(t, 1, []raft.Peer{{ID: 1}}, nil, log, 0)
	waitLeader(ctx, t, m.node, 1)
	var last uint64
	for i := range 3 {
		if err := m.node.Propose(ctx, []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-m.applied:
			last = e.GetIndex()
		case <-ctx.Done():
			t.Fatal("proposal not applied")
		}
	}
	m.node.Stop()
	// The test's applier keeps the ConfState in memory only; the server's
	// stores it with the applied index.
	b := eng.NewBatch()
	if err := raftlog.StageConfState(b, log.ConfState()); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// The crash: the HardState on disk says less was committed than the
	// applied index says was applied.
	hs := log.HardState()
	hs.Commit = proto.Uint64(last - 2)
	if err := log.Save(hs, nil, true); err != nil {
		t.Fatal(err)
	}
	log, err = raftlog.Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	m = startMemberOn(t, 1, nil, nil, log, last)
	waitLeader(ctx, t, m.node, 1)
	if err := m.node.Propose(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case e := <-m.applied:
			if string(e.Data) == "after" {
				if e.GetIndex() <= last {
					t.Fatalf("new entry at index %d, not after %d", e.GetIndex(), last)
				}
				return
			}
			// v1, v2: committed again after the restart, above the saved
			// commit index.
			if e.GetIndex() <= last-2 || e.GetIndex() > last {
				t.Fatalf("redelivered entry %d outside (%d, %d]", e.GetIndex(), last-2, last)
			}
		case <-ctx.Done():
			t.Fatal("proposal after the restart not applied")
		}
	}
}
