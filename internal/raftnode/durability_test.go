package raftnode

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

// syncGate is an engine whose synced commits can be held back, and which
// records the highest raft log index that a synced commit made durable.
// Entries written by an unsynced commit do not count: they would be lost
// by a power cut.
type syncGate struct {
	storage.Engine
	mu      sync.Mutex
	held    bool          // guarded by mu: synced commits wait for release
	release chan struct{} // guarded by mu: closed to let held commits go
	blocked chan uint64   // receives the last index of each held commit
	synced  uint64        // guarded by mu
	largest int           // guarded by mu: most raft entries in one synced commit
}

func (g *syncGate) NewBatch() storage.Batch { return &gateBatch{Batch: g.Engine.NewBatch(), g: g} }

func (g *syncGate) hold() {
	g.mu.Lock()
	g.held, g.release = true, make(chan struct{})
	g.mu.Unlock()
}

func (g *syncGate) open() {
	g.mu.Lock()
	if g.held {
		g.held = false
		close(g.release)
	}
	g.mu.Unlock()
}

func (g *syncGate) syncedIndex() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.synced
}

type gateBatch struct {
	storage.Batch
	g       *syncGate
	last    uint64 // highest raft entry index staged in this batch
	entries int    // raft entries staged in this batch
}

func (b *gateBatch) Set(key, value []byte) error {
	if bytes.HasPrefix(key, storage.PrefixRaftEntry) {
		b.last = max(b.last, binary.BigEndian.Uint64(key[len(storage.PrefixRaftEntry):]))
		b.entries++
	}
	return b.Batch.Set(key, value)
}

// largestSave returns the most raft entries one synced commit saved.
func (g *syncGate) largestSave() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.largest
}

func (b *gateBatch) Commit(sync bool) error {
	if sync && b.last > 0 {
		b.g.mu.Lock()
		held, release := b.g.held, b.g.release
		b.g.mu.Unlock()
		if held {
			b.g.blocked <- b.last
			<-release
		}
	}
	if err := b.Batch.Commit(sync); err != nil {
		return err
	}
	if sync {
		b.g.mu.Lock()
		b.g.synced = max(b.g.synced, b.last)
		b.g.largest = max(b.g.largest, b.entries)
		b.g.mu.Unlock()
	}
	return nil
}

// TestEntryAppliedOnlyAfterSynced checks the rule every acknowledgement
// rests on: an entry reaches the apply loop (which answers its proposer)
// only after a synced commit of the raft log holding it returned. The sync
// of a proposal's entry is held back for a while; an apply of that entry
// meanwhile, or of any entry above the synced index, fails the test.
func TestEntryAppliedOnlyAfterSynced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Raft commits the bootstrap conf change as it creates it, before this
	// member saved it: hold that first save too.
	gm := startGated(t, true)
	n, g, applied, violations := gm.n, gm.g, gm.applied, gm.violations
	select {
	case idx := <-g.blocked:
		window := time.NewTimer(50 * time.Millisecond)
		select {
		case v := <-violations:
			t.Fatalf("bootstrap: %s (its synced commit of index %d held)", v, idx)
		case <-window.C:
		}
	case <-ctx.Done():
		t.Fatal("bootstrap: no synced commit of the conf change was attempted")
	}
	g.open()
	gm.lead(ctx, t)
	for i := range 5 {
		g.hold()
		data := fmt.Sprintf("v%d", i)
		// Propose returns once the run goroutine took the proposal, which
		// may be after a save held by an earlier test step: not waited for.
		proposed := make(chan error, 1)
		go func() { proposed <- n.Propose(ctx, []byte(data)) }()
		var idx uint64
		select {
		case idx = <-g.blocked:
		case <-ctx.Done():
			t.Fatalf("proposal %d: no synced commit of its entry was attempted", i)
		}
		// While the sync is held, the entry must not be applied. Give a
		// wrong implementation time to do so; a correct one cannot.
		window := time.NewTimer(50 * time.Millisecond)
		select {
		case e := <-applied:
			t.Fatalf("entry %d (%q) applied while the synced commit of index %d was held", e.GetIndex(), e.Data, idx)
		case <-window.C:
		}
		g.open()
		if err := <-proposed; err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-applied:
			if string(e.Data) != data {
				t.Fatalf("applied %q, want %q", e.Data, data)
			}
		case <-ctx.Done():
			t.Fatalf("proposal %d was not applied after its sync", i)
		}
	}
	select {
	case v := <-violations:
		t.Fatal(v)
	default:
	}
}

// waitLeader waits until n knows id as its leader, or fails at ctx's end.
func waitLeader(ctx context.Context, t *testing.T, n *Node, id uint64) {
	t.Helper()
	for {
		// The channel is taken before the leader is read: a change between
		// the two closes it, where the other order would wait on the
		// channel that replaced it, for a change that already happened.
		changed := n.LeaderChanged()
		if n.Leader() == id {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("member %d did not become leader", id)
		}
	}
}

// gated is a single member on a syncGate. Its apply loop forwards applied
// normal entries to applied and reports to violations any entry applied
// above the synced log.
type gated struct {
	n          *Node
	g          *syncGate
	applied    chan *raftpb.Entry
	violations chan string
}

// startGated starts a gated member; with hold its first synced save (the
// bootstrap conf change) is held.
func startGated(t *testing.T, hold bool) *gated {
	t.Helper()
	return startGatedWith(t, hold, Gather{})
}

// startGatedWith is startGated with a group commit configured.
func startGatedWith(t *testing.T, hold bool, gather Gather) *gated {
	t.Helper()
	gm := &gated{
		g:          &syncGate{Engine: memory.New(), blocked: make(chan uint64, 1)},
		applied:    make(chan *raftpb.Entry, 1024),
		violations: make(chan string, 1024),
	}
	log, err := raftlog.Open(gm.g)
	if err != nil {
		t.Fatal(err)
	}
	if hold {
		gm.g.hold()
	}
	gm.n, err = Start(Config{ID: 1, Peers: []raft.Peer{{ID: 1}}, ElectionTicks: 10, HeartbeatTicks: 1, Tick: make(chan time.Time), Storage: log, Gather: gather})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gm.n.Stop)
	t.Cleanup(gm.g.open) // runs first: a failed test must not leave a save held
	go func() {
		for ap := range gm.n.Applies() {
			for _, e := range ap.Entries {
				if s := gm.g.syncedIndex(); e.GetIndex() > s {
					gm.violations <- fmt.Sprintf("entry %d applied while the synced log ends at %d", e.GetIndex(), s)
				}
				if e.GetType() == raftpb.EntryType_EntryNormal && len(e.Data) > 0 {
					gm.applied <- e
				}
			}
			ap.Done()
		}
	}()
	return gm
}

// lead waits until the member leads and applied a first proposal (so the
// new leader's empty entry is saved before the test holds anything).
func (gm *gated) lead(ctx context.Context, t *testing.T) {
	t.Helper()
	waitLeader(ctx, t, gm.n, 1)
	if err := gm.n.Propose(ctx, []byte("first")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gm.applied:
	case <-ctx.Done():
		t.Fatal("the first proposal was not applied")
	}
}
