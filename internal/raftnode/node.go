package raftnode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/failpoint"
	"github.com/metastore/metastore/internal/raftlog"
)

// ErrStopped is returned by calls on a stopped node.
var ErrStopped = errors.New("raftnode: stopped")

// ErrNoLeader is returned when a linearizable read cannot be served because
// no leader is known.
var ErrNoLeader = errors.New("raftnode: no leader")

// Transport carries messages to the other members. A single-member group
// has none.
type Transport interface {
	Send(msgs []*raftpb.Message)
}

// Metrics receives what the node measures; nil fields are skipped.
type Metrics struct {
	FsyncSeconds   func(seconds float64)
	LeaderChanged  func()
	LeaderIsSelf   func(bool)
	HasLeader      func(bool)
	ProposalFailed func()
	// Committed receives raft's commit index from each Ready that carries a
	// HardState, before that Ready's committed entries go to the apply loop,
	// so a reported commit index is never below the applied index.
	Committed func(index uint64)
}

// Config configures a Node.
type Config struct {
	ID uint64
	// Peers bootstraps a new group; empty means restart from Storage.
	Peers          []raft.Peer
	ElectionTicks  int
	HeartbeatTicks int
	// Tick delivers the logical clock; production passes a time.Ticker's
	// channel, deterministic tests a channel they feed.
	Tick      <-chan time.Time
	Storage   *raftlog.Storage
	Applied   uint64
	Transport Transport
	// NoSync skips fsync on persist (etcd's --unsafe-no-fsync).
	NoSync  bool
	PreVote bool
	Logger  *zap.Logger
	Metrics Metrics
	// Gather makes a busy leader's synced saves larger (zero: off).
	Gather Gather
}

// Gather configures a leader's group commit: once a synced save carried at
// least Min entries (the sign of a queue of writers), the run goroutine
// hands out what that save committed and then lets proposals queue, taking
// them once per Idle period (for at most Window, ending sooner once a
// period brings none) before the next Ready, so that one fsync and one
// Ready's fixed work (apply batch, wake-ups) carry more requests. Only a
// group of one gathers; reads, status calls and peers' messages end a
// gathering at once. See docs/adr/0027-leader-gathers-proposals.md.
type Gather struct {
	Window time.Duration
	Idle   time.Duration
	Min    int
	// After returns a channel that fires once d has passed, and a func that
	// stops it; nil means time.NewTimer. Deterministic tests fire it
	// themselves.
	After func(d time.Duration) (<-chan time.Time, func() bool)
}

func (g Gather) after(d time.Duration) (<-chan time.Time, func() bool) {
	if g.After != nil {
		return g.After(d)
	}
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// Apply is one batch of committed entries for the apply loop, or a
// snapshot to install (Snapshot set, no Entries) before any later entry.
// The apply loop must call Done once it has applied them.
type Apply struct {
	Entries  []*raftpb.Entry
	Snapshot *raftpb.Snapshot
	done     chan struct{}
	err      error
}

// Done tells the node the entries were applied.
func (a *Apply) Done() { close(a.done) }

// Fail tells the node applying failed; the node stops.
func (a *Apply) Fail(err error) {
	a.err = err
	close(a.done)
}

// Node runs one raft member.
//
// Its run goroutine owns the raft.RawNode: every call that touches raft
// reaches it through a channel (proposals through propc, peers' messages
// through recvc, anything else as a function through ctlc), so no lock guards
// raft's state. Owning the loop (rather than running raft.Node's goroutine
// beside ours) lets it step every proposal queued while a Ready was being
// persisted as one MsgProp, and saves two goroutine hand-offs per Ready.
type Node struct {
	cfg     Config
	lg      *zap.Logger
	rn      *raft.RawNode // run goroutine only (and Start before it runs)
	storage *raftlog.Storage

	propc chan *proposal
	recvc chan *raftpb.Message
	ctlc  chan func(rn *raft.RawNode)
	// props recycles proposals a proposer got its answer for.
	props sync.Pool
	// removed is set when this member applied its own removal, lead
	// changes clear it; proposals wait meanwhile (run goroutine only).
	removed bool

	applyc chan *Apply
	stopc  chan struct{}
	donec  chan struct{}
	stopMu sync.Once

	lead atomic.Uint64
	term atomic.Uint64

	leaderChangedMu sync.Mutex    // guards leaderChanged
	leaderChanged   chan struct{} // closed and replaced on each leader change

	reads     chan *readWaiter
	readState chan raft.ReadState
	readSeq   atomic.Uint64

	err atomic.Pointer[error]

	campaign bool           // run goroutine only (and Start before it runs)
	state    raft.StateType // run goroutine only
}

// tryCampaign asks raft to campaign; raft ignores the request while conf
// changes are committed but unapplied, so it is retried after each Ready.
func (n *Node) tryCampaign() {
	if n.lead.Load() != 0 {
		n.campaign = false
		return
	}
	if n.state != raft.StateFollower {
		return // an election is under way; asking again would restart it
	}
	if err := n.rn.Campaign(); err != nil {
		n.lg.Debug("campaign not accepted yet", zap.Error(err))
	}
}

// AdvanceTicks fast-forwards the logical clock by k ticks, as etcd does on
// start (--initial-election-tick-advance) so that a member whose peers
// are up need not wait a whole election timeout for the first election.
func (n *Node) AdvanceTicks(k int) {
	n.do(context.Background(), func(rn *raft.RawNode) {
		for range k {
			rn.Tick()
		}
	})
}

// Start starts (or restarts) the raft member.
func Start(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	// The apply loop commits its batch, with the applied index, while this
	// loop saves the HardState that raised the commit index; neither is
	// synced, so a crash may keep the first and lose the second. raft
	// refuses to start with an applied index above its commit index: start
	// it at the saved commit index instead. The entries in between are
	// committed again (they are in the synced log) and delivered, and the
	// applier skips the ones at or below its own applied index.
	applied := min(cfg.Applied, cfg.Storage.HardState().GetCommit())
	if len(cfg.Peers) > 0 {
		applied = cfg.Applied
	}
	rc := &raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   cfg.Storage,
		Applied:                   applied,
		MaxSizePerMsg:             1 << 20,
		MaxInflightMsgs:           4096 / 8,
		MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum:               true,
		// A leader removed from the cluster hands over at once instead of
		// leading a group it is no longer part of until it stops.
		StepDownOnRemoval: true,
		PreVote:           cfg.PreVote,
		Logger:            raftLogger{cfg.Logger.Named("raft").Sugar()},
	}
	n := &Node{
		cfg:           cfg,
		lg:            cfg.Logger,
		storage:       cfg.Storage,
		propc:         make(chan *proposal, maxBatch),
		recvc:         make(chan *raftpb.Message, 4096),
		ctlc:          make(chan func(*raft.RawNode), 64),
		applyc:        make(chan *Apply, 64),
		stopc:         make(chan struct{}),
		donec:         make(chan struct{}),
		leaderChanged: make(chan struct{}),
		reads:         make(chan *readWaiter, 1024),
		readState:     make(chan raft.ReadState, 16),
	}
	n.props.New = func() any { return &proposal{errc: make(chan error, 1)} }
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return nil, fmt.Errorf("raftnode: start raft: %w", err)
	}
	if len(cfg.Peers) > 0 {
		if err := rn.Bootstrap(cfg.Peers); err != nil {
			return nil, fmt.Errorf("raftnode: bootstrap raft: %w", err)
		}
	}
	n.rn = rn
	// A group of one has nobody to wait for: it campaigns as soon as raft
	// lets it (after the bootstrap conf changes are applied) rather than
	// after an election timeout, so a single member serves in milliseconds.
	n.campaign = n.soleVoter()
	if n.campaign && len(cfg.Peers) == 0 {
		// A bootstrapping group must apply its conf changes first; the
		// Ready loop asks then. (Before the run goroutine owns raft.)
		n.tryCampaign()
	}
	go n.run()
	go n.readLoop()
	return n, nil
}

func (n *Node) soleVoter() bool {
	if len(n.cfg.Peers) > 0 {
		return len(n.cfg.Peers) == 1 && n.cfg.Peers[0].ID == n.cfg.ID
	}
	cs := n.storage.ConfState()
	return len(cs.Voters) == 1 && cs.Voters[0] == n.cfg.ID && len(cs.VotersOutgoing) == 0
}

// Applies delivers committed entries in log order.
func (n *Node) Applies() <-chan *Apply { return n.applyc }

// Propose proposes data; it returns once raft accepted the proposal into its
// log (not when it is committed). While no leader is known it waits, as
// raft.Node does, until one is or ctx ends; a proposal whose ctx ended
// before the run goroutine took it is never proposed.
func (n *Node) Propose(ctx context.Context, data []byte) error {
	for {
		changed := n.LeaderChanged()
		p := n.props.Get().(*proposal)
		p.data = data
		_, err := n.submit(ctx, p)
		if p.state.Load() != proposalAbandoned {
			n.props.Put(p.reset())
		}
		if err != errNoLeader {
			return err
		}
		// raft lost its leader before the run goroutine learnt of it from
		// a Ready: wait for the change (or, should raft have the same
		// leader back before the next Ready, a moment), then queue again.
		retry := time.NewTimer(noLeaderRetry)
		select {
		case <-changed:
		case <-retry.C:
		case <-ctx.Done():
			retry.Stop()
			return ctx.Err()
		case <-n.donec:
			retry.Stop()
			return ErrStopped
		}
		retry.Stop()
	}
}

// errNoLeader answers proposals raft dropped for want of a leader; Propose
// queues them again once one is known, as raft.Node's proposers wait.
var errNoLeader = errors.New("raftnode: no leader to take the proposal")

// noLeaderRetry bounds how long a proposal raft dropped for want of a
// leader waits for a leader change before it is queued again.
const noLeaderRetry = 50 * time.Millisecond

// ProposeConfChange proposes a membership change. Like raft.Node's, it
// returns once raft took the proposal, without raft's verdict: a dropped
// conf change is noticed by its proposer's wait for it being applied.
func (n *Node) ProposeConfChange(ctx context.Context, cc raftpb.ConfChangeI) error {
	p := &proposal{cc: cc, errc: make(chan error, 1)}
	if taken, err := n.submit(ctx, p); !taken {
		return err
	}
	return nil
}

// submit queues p for the run goroutine. Once the run goroutine took p it
// returns raft's verdict and taken; otherwise ctx's error or ErrStopped, and
// p was not and will not be proposed. An abandoned p (its state says so) may
// still sit in propc and must not be reused.
func (n *Node) submit(ctx context.Context, p *proposal) (taken bool, err error) {
	select {
	case n.propc <- p:
	case <-ctx.Done():
		return false, ctx.Err()
	case <-n.donec:
		return false, ErrStopped
	}
	select {
	case err := <-p.errc:
		return true, err
	case <-ctx.Done():
		err = ctx.Err()
	case <-n.donec:
		err = ErrStopped
	}
	if p.state.CompareAndSwap(proposalQueued, proposalAbandoned) {
		return false, err
	}
	// Taken just now: the run goroutine answers before it serves anything
	// else.
	return true, <-p.errc
}

// ApplyConfChange applies a committed conf change to raft and returns the
// new ConfState, which the caller persists with its applied index.
func (n *Node) ApplyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState {
	c := make(chan *raftpb.ConfState, 1)
	if n.do(context.Background(), func(rn *raft.RawNode) { c <- n.applyConfChange(rn, cc) }) {
		select {
		case cs := <-c:
			return cs
		case <-n.donec:
		}
	}
	return &raftpb.ConfState{}
}

func (n *Node) applyConfChange(rn *raft.RawNode, cc raftpb.ConfChangeI) *raftpb.ConfState {
	before := n.hasProgress(rn)
	cs := rn.ApplyConfChange(cc)
	// A member that applied its own removal stops taking proposals (as
	// raft.Node does), unless it is still a voter of a joint configuration.
	if before && !n.hasProgress(rn) && !slices.Contains(cs.GetVoters(), n.cfg.ID) &&
		!slices.Contains(cs.GetVotersOutgoing(), n.cfg.ID) {
		n.removed = true
	}
	return cs
}

func (n *Node) hasProgress(rn *raft.RawNode) bool {
	found := false
	rn.WithProgress(func(id uint64, _ raft.ProgressType, _ tracker.Progress) {
		if id == n.cfg.ID {
			found = true
		}
	})
	return found
}

// Step delivers a message from a peer.
func (n *Node) Step(ctx context.Context, m *raftpb.Message) error {
	select {
	case n.recvc <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return ErrStopped
	}
}

// ReportUnreachable tells raft that messages to id were lost.
func (n *Node) ReportUnreachable(id uint64) {
	n.do(context.Background(), func(rn *raft.RawNode) { rn.ReportUnreachable(id) })
}

// ReportSnapshot tells raft how sending a snapshot to id ended.
func (n *Node) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	n.do(context.Background(), func(rn *raft.RawNode) { rn.ReportSnapshot(id, status) })
}

// do runs f on the run goroutine; false if ctx ended or the node stopped
// before it was taken.
func (n *Node) do(ctx context.Context, f func(rn *raft.RawNode)) bool {
	select {
	case n.ctlc <- f:
		return true
	case <-ctx.Done():
		return false
	case <-n.donec:
		return false
	}
}

// Leader returns the current leader's ID, or 0.
func (n *Node) Leader() uint64 { return n.lead.Load() }

// Term returns the current term.
func (n *Node) Term() uint64 { return n.term.Load() }

// IsLeader reports whether this member leads.
func (n *Node) IsLeader() bool { return n.lead.Load() == n.cfg.ID }

// ID returns this member's raft ID.
func (n *Node) ID() uint64 { return n.cfg.ID }

// LeaderChanged returns a channel closed at the next leader change.
func (n *Node) LeaderChanged() <-chan struct{} {
	n.leaderChangedMu.Lock()
	defer n.leaderChangedMu.Unlock()
	return n.leaderChanged
}

// Status returns raft's status (the zero Status once the node stopped).
func (n *Node) Status() raft.Status {
	c := make(chan raft.Status, 1)
	if n.do(context.Background(), func(rn *raft.RawNode) { c <- rn.Status() }) {
		select {
		case st := <-c:
			return st
		case <-n.donec:
		}
	}
	return raft.Status{}
}

// TransferLeadership asks raft to hand leadership to transferee.
func (n *Node) TransferLeadership(ctx context.Context, transferee uint64) {
	n.do(ctx, func(rn *raft.RawNode) { rn.TransferLeader(transferee) })
}

// Err returns the error that stopped the node, if any.
func (n *Node) Err() error {
	if p := n.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Done is closed when the node's loop has exited.
func (n *Node) Done() <-chan struct{} { return n.donec }

// Stop stops the node and waits for its loop to exit.
func (n *Node) Stop() {
	n.stopMu.Do(func() { close(n.stopc) })
	<-n.donec
}

func (n *Node) fail(err error) {
	n.err.CompareAndSwap(nil, &err)
	n.stopMu.Do(func() { close(n.stopc) })
}

func (n *Node) run() {
	defer close(n.donec)
	defer close(n.applyc)
	// gather: the last synced save was large enough to start a gathering,
	// which begins once what it committed was handed out.
	gather := false
	for {
		if n.rn.HasReady() {
			rd := n.rn.Ready()
			if err := n.handleReady(rd); err != nil {
				n.lg.Error("raft ready handling failed; stopping", zap.Error(err))
				n.fail(err)
				return
			}
			if n.stopped() {
				return
			}
			failpoint.Inject(failpoint.RaftBeforeAdvance)
			n.rn.Advance(rd)
			if n.campaign {
				n.tryCampaign()
			}
			if n.startsGathering(rd) {
				// A single member commits its save at Advance: the next
				// Ready hands those entries to the apply loop, whose
				// answers bring the proposals the gathering waits for.
				gather = true
				continue
			}
		} else if !gather && n.serve(nil, nil) == stopping {
			return
		}
		if gather {
			gather = false
			if n.gatherProposals() == stopping {
				return
			}
		}
		// Take whatever else arrived meanwhile (proposals queued during the
		// last save become one batch) before the next Ready.
		for i := 0; i < 4*maxBatch && n.pending(); i++ {
			if n.serve(nil, nil) == stopping {
				return
			}
		}
	}
}

// startsGathering reports whether the save of rd starts a gathering: a
// synced save of at least Gather.Min entries by a leader that replicates to
// nobody. A group of one commits its save at Advance, so the gathering
// delays nothing but the next save; a leader with followers would hold back
// its next MsgApp, and its commit index rises with their answers, not with
// its own save.
func (n *Node) startsGathering(rd raft.Ready) bool {
	g := n.cfg.Gather
	if g.Window <= 0 || g.Min <= 0 || len(rd.Entries) < g.Min || !rd.MustSync || n.cfg.NoSync || !n.IsLeader() {
		return false
	}
	alone := true
	n.rn.WithProgress(func(id uint64, _ raft.ProgressType, _ tracker.Progress) {
		if id != n.cfg.ID {
			alone = false
		}
	})
	return alone
}

// maxGathered bounds the proposals one gathering takes.
const maxGathered = 4 * maxBatch

// gatherProposals lets proposals queue and takes them once per Idle
// period, until a period brought none, Gather.Window passed, maxGathered
// were taken, or something arrived that must not wait for the next Ready:
// a read or other call on raft (ctlc), or a peer's message. Taking them
// per period rather than each as it arrives keeps the cost per proposal
// that of a queue drained at once (one wake-up, one MsgProp), as between
// Readies.
func (n *Node) gatherProposals() int {
	g := n.cfg.Gather
	window, stopWindow := g.after(g.Window)
	defer stopWindow()
	idle, stopIdle := g.after(g.Idle)
	defer func() { stopIdle() }()
	taken := 0
	for {
		select {
		case <-window:
			return finished // the run loop takes what queued meanwhile
		case <-idle:
			k := n.takeQueued()
			if k == 0 || taken+k >= maxGathered {
				return finished
			}
			taken += k
			idle, stopIdle = g.after(g.Idle)
		case m := <-n.recvc:
			// A group of one hears from a peer only while its
			// configuration changes: that must not wait.
			n.step(m)
			return finished
		case f := <-n.ctlc:
			f(n.rn)
			return finished
		case <-n.cfg.Tick:
			n.rn.Tick()
		case <-n.stopc:
			return stopping
		}
	}
}

// takeQueued proposes what waits in the queue now (up to maxGathered) and
// returns how many proposals it took. Only the run goroutine receives from
// propc, so a queue that is not empty does not block it (as in pending).
func (n *Node) takeQueued() int {
	taken := 0
	for taken < maxGathered && n.proposals() != nil && len(n.propc) > 0 {
		taken += n.propose(<-n.propc)
	}
	return taken
}

// pending reports whether an event waits that serve would take at once
// (only the run goroutine receives from these channels).
func (n *Node) pending() bool {
	return len(n.recvc) > 0 || len(n.ctlc) > 0 || len(n.proposals()) > 0 || len(n.cfg.Tick) > 0
}

// What serve did.
const (
	served   = iota // one of raft's events
	finished        // wake fired, or ap went to the apply loop
	stopping        // the node is stopping
)

// serve waits for and serves one event of raft's, or hands ap (if not nil)
// to the apply loop, or notices wake (if not nil) firing.
func (n *Node) serve(wake <-chan struct{}, ap *Apply) int {
	var applyc chan<- *Apply
	if ap != nil {
		applyc = n.applyc
	}
	select {
	case applyc <- ap:
		return finished
	case <-wake:
		return finished
	case p := <-n.proposals():
		n.propose(p)
	case m := <-n.recvc:
		n.step(m)
	case f := <-n.ctlc:
		f(n.rn)
	case <-n.cfg.Tick:
		n.rn.Tick()
	case <-n.stopc:
		return stopping
	}
	return served
}

// await waits for done while serving raft's other work, as raft.Node's loop
// does between a Ready and its Advance: the apply loop may need the run
// goroutine meanwhile (ApplyConfChange, Status) to finish what is awaited.
// False means the node is stopping.
func (n *Node) await(done <-chan struct{}) bool {
	for {
		switch n.serve(done, nil) {
		case finished:
			return true
		case stopping:
			return false
		}
	}
}

// sendApply hands ap to the apply loop, serving raft's other work while the
// apply loop is behind; false means the node is stopping.
func (n *Node) sendApply(ap *Apply) bool {
	for {
		switch n.serve(nil, ap) {
		case finished:
			return true
		case stopping:
			return false
		}
	}
}

func (n *Node) stopped() bool {
	select {
	case <-n.stopc:
		return true
	default:
		return false
	}
}

// proposals is propc while proposals can be taken: a leader is known and
// this member was not removed (raft.Node's rule); nil otherwise, so that
// proposers wait.
func (n *Node) proposals() chan *proposal {
	if n.lead.Load() == 0 || n.removed {
		return nil
	}
	return n.propc
}

func (n *Node) step(m *raftpb.Message) {
	// Messages from peers raft does not know, or local message types
	// arriving over the network, are refused by RawNode.Step; both are
	// dropped, as raft.Node drops them.
	if err := n.rn.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) && !errors.Is(err, raft.ErrStepLocalMsg) {
		n.lg.Debug("raft refused a message", zap.Stringer("type", m.GetType()), zap.Uint64("from", m.GetFrom()), zap.Error(err))
	}
}

// maxBatch bounds the proposals stepped as one MsgProp.
const maxBatch = 512

// propose steps first and every proposal queued behind it (up to maxBatch)
// as one MsgProp, and answers each proposer with raft's verdict. A conf
// change is stepped on its own. It returns how many proposals it took.
func (n *Node) propose(first *proposal) int {
	var ents []*raftpb.Entry
	var batch []*proposal
	take := func(p *proposal) bool {
		if !p.state.CompareAndSwap(proposalQueued, proposalTaken) {
			return false // its proposer gave up before it was proposed
		}
		if p.cc != nil {
			n.flush(ents, batch)
			ents, batch = nil, nil
			err := n.rn.ProposeConfChange(p.cc)
			if err != nil {
				n.lg.Debug("conf change proposal not accepted", zap.Error(err))
			}
			p.errc <- err
			return true
		}
		ents = append(ents, &raftpb.Entry{Data: p.data})
		batch = append(batch, p)
		return true
	}
	taken := 1
	take(first)
	for len(batch) < maxBatch {
		select {
		case p := <-n.propc:
			take(p)
			taken++
			continue
		default:
		}
		break
	}
	n.flush(ents, batch)
	return taken
}

func (n *Node) flush(ents []*raftpb.Entry, batch []*proposal) {
	if len(ents) == 0 {
		return
	}
	err := n.rn.Step(&raftpb.Message{Type: raftpb.MsgProp.Enum(), From: proto.Uint64(n.cfg.ID), Entries: ents})
	if errors.Is(err, raft.ErrProposalDropped) && n.rn.BasicStatus().Lead == raft.None {
		err = errNoLeader
	}
	for _, p := range batch {
		p.errc <- err
	}
}

// Proposal states: queued in propc, taken by the run goroutine (which
// then answers on errc), or abandoned by its proposer (never proposed).
const (
	proposalQueued int32 = iota
	proposalTaken
	proposalAbandoned
)

// proposal is one Propose or ProposeConfChange call on its way to the run
// goroutine.
type proposal struct {
	data  []byte
	cc    raftpb.ConfChangeI
	state atomic.Int32
	errc  chan error // buffered: the run goroutine never blocks on it
}

func (p *proposal) reset() *proposal {
	p.data, p.cc = nil, nil
	p.state.Store(proposalQueued)
	return p
}

func (n *Node) handleReady(rd raft.Ready) error {
	if rd.SoftState != nil {
		n.state = rd.SoftState.RaftState
		if lead := rd.SoftState.Lead; lead != 0 && lead != n.lead.Load() {
			n.removed = false // raft.Node's rule: a new leader lets proposals in again
		}
		n.setLeader(rd.SoftState.Lead)
	}
	if rd.HardState != nil && rd.HardState.Term != nil {
		n.term.Store(rd.HardState.GetTerm())
	}
	if rd.HardState != nil && rd.HardState.Commit != nil && n.cfg.Metrics.Committed != nil {
		n.cfg.Metrics.Committed(rd.HardState.GetCommit())
	}
	for _, rs := range rd.ReadStates {
		select {
		case n.readState <- rs:
		default:
			// The read loop is gone or far behind; its waiters retry.
		}
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		// The image was staged when the MsgSnap arrived; the apply loop
		// installs it in order, before any entry that follows it, and
		// nothing of this Ready is persisted until it is in place.
		sp := &Apply{Snapshot: rd.Snapshot, done: make(chan struct{})}
		if !n.sendApply(sp) || !n.await(sp.done) {
			return nil
		}
		if sp.err != nil {
			return fmt.Errorf("raftnode: install snapshot at index %d: %w", rd.Snapshot.GetMetadata().GetIndex(), sp.err)
		}
		n.lg.Info("installed a snapshot", zap.Uint64("index", rd.Snapshot.GetMetadata().GetIndex()),
			zap.Uint64("term", rd.Snapshot.GetMetadata().GetTerm()))
	}
	var ap *Apply
	if len(rd.CommittedEntries) > 0 {
		ap = &Apply{Entries: rd.CommittedEntries, done: make(chan struct{})}
	}
	// Committed entries usually were saved by an earlier Ready, so the apply
	// loop starts on them while this Ready's entries are synced (as etcd
	// does). Raft may also hand out an entry committed before this member
	// saved it: the bootstrap conf changes, which raft commits as it creates
	// them, and entries a lagging follower receives together with a commit
	// index covering them. Those are applied only after the save below,
	// because the apply loop's own commit could otherwise reach the disk
	// without the log entry it applied (a restart would then find an applied
	// index above an empty log).
	applyAfterSave := ap != nil && len(rd.Entries) > 0 &&
		rd.CommittedEntries[len(rd.CommittedEntries)-1].GetIndex() >= rd.Entries[0].GetIndex()
	if ap != nil && !applyAfterSave {
		if !n.sendApply(ap) {
			return nil
		}
	}
	leader := n.IsLeader()
	// A leader may send before it persists (raft thesis §10.2.1): its own
	// vote counts only after Advance. Followers must persist first.
	if leader {
		failpoint.Inject(failpoint.RaftBeforeLeaderSend)
		n.send(rd.Messages)
	}
	start := time.Now()
	failpoint.Inject(failpoint.RaftBeforeSave)
	if err := n.storage.Save(rd.HardState, rd.Entries, rd.MustSync && !n.cfg.NoSync); err != nil {
		return fmt.Errorf("raftnode: persist ready: %w", err)
	}
	failpoint.Inject(failpoint.RaftAfterSave)
	if rd.MustSync && n.cfg.Metrics.FsyncSeconds != nil {
		n.cfg.Metrics.FsyncSeconds(time.Since(start).Seconds())
	}
	if applyAfterSave {
		if !n.sendApply(ap) {
			return nil
		}
	}
	if !leader {
		failpoint.Inject(failpoint.RaftBeforeFollowerSend)
		n.send(rd.Messages)
	}
	if ap != nil && containsConfChange(rd.CommittedEntries) {
		// The next Ready must be computed with the new configuration.
		if !n.await(ap.done) {
			return nil
		}
	}
	return nil
}

func containsConfChange(ents []*raftpb.Entry) bool {
	for _, e := range ents {
		if t := e.GetType(); t == raftpb.EntryType_EntryConfChange || t == raftpb.EntryType_EntryConfChangeV2 {
			return true
		}
	}
	return false
}

func (n *Node) send(msgs []*raftpb.Message) {
	if len(msgs) == 0 || n.cfg.Transport == nil {
		return
	}
	n.cfg.Transport.Send(msgs)
}

func (n *Node) setLeader(lead uint64) {
	old := n.lead.Swap(lead)
	if old == lead {
		return
	}
	m := n.cfg.Metrics
	if m.HasLeader != nil {
		m.HasLeader(lead != 0)
	}
	if m.LeaderIsSelf != nil {
		m.LeaderIsSelf(lead == n.cfg.ID)
	}
	if lead != 0 && m.LeaderChanged != nil {
		m.LeaderChanged()
	}
	n.lg.Info("raft leader changed", zap.Uint64("from", old), zap.Uint64("to", lead))
	n.leaderChangedMu.Lock()
	close(n.leaderChanged)
	n.leaderChanged = make(chan struct{})
	n.leaderChangedMu.Unlock()
}

type readWaiter struct {
	ctx   context.Context
	index uint64
	err   error
	done  chan struct{}
}

// ReadIndex returns a commit index that a linearizable read must wait for:
// once the local applied index reaches it, local state reflects every write
// acknowledged before ReadIndex was called. Concurrent callers share one
// raft round trip.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	w := &readWaiter{ctx: ctx, done: make(chan struct{})}
	select {
	case n.reads <- w:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.donec:
		return 0, ErrStopped
	}
	select {
	case <-w.done:
		return w.index, w.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// readRetry is how long the read loop waits for raft to answer one ReadIndex
// before asking again (raft drops requests, e.g. during an election).
const readRetry = 500 * time.Millisecond

func (n *Node) readLoop() {
	for {
		var batch []*readWaiter
		select {
		case w := <-n.reads:
			batch = append(batch, w)
		case <-n.donec:
			return
		}
	drain:
		for len(batch) < 4096 {
			select {
			case w := <-n.reads:
				batch = append(batch, w)
			default:
				break drain
			}
		}
		index, err := n.roundTrip(batch)
		for _, w := range batch {
			w.index, w.err = index, err
			close(w.done)
		}
	}
}

// roundTrip asks raft for a read index until it answers, every waiter in
// the batch gave up, or the node stops.
func (n *Node) roundTrip(batch []*readWaiter) (uint64, error) {
	for {
		if allDone(batch) {
			return 0, context.Canceled
		}
		rctx := make([]byte, 8)
		binary.BigEndian.PutUint64(rctx, n.readSeq.Add(1))
		if !n.do(context.Background(), func(rn *raft.RawNode) { rn.ReadIndex(rctx) }) {
			return 0, ErrStopped
		}
		timer := time.NewTimer(readRetry)
	wait:
		for {
			select {
			case rs := <-n.readState:
				if string(rs.RequestCtx) == string(rctx) {
					timer.Stop()
					return rs.Index, nil
				}
				// An answer to an abandoned earlier round: keep waiting.
			case <-timer.C:
				break wait
			case <-n.donec:
				timer.Stop()
				return 0, ErrStopped
			}
		}
	}
}

func allDone(batch []*readWaiter) bool {
	for _, w := range batch {
		if w.ctx.Err() == nil {
			return false
		}
	}
	return true
}
