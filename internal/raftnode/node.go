package raftnode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

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
type Node struct {
	cfg     Config
	lg      *zap.Logger
	node    raft.Node
	storage *raftlog.Storage

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
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := n.node.Campaign(ctx); err != nil {
		n.lg.Debug("campaign not accepted yet", zap.Error(err))
	}
}

// AdvanceTicks fast-forwards the logical clock by k ticks, as etcd does on
// start (--initial-election-tick-advance) so that a member whose peers
// are up need not wait a whole election timeout for the first election.
func (n *Node) AdvanceTicks(k int) {
	for range k {
		n.node.Tick()
	}
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
		applyc:        make(chan *Apply, 64),
		stopc:         make(chan struct{}),
		donec:         make(chan struct{}),
		leaderChanged: make(chan struct{}),
		reads:         make(chan *readWaiter, 1024),
		readState:     make(chan raft.ReadState, 16),
	}
	if len(cfg.Peers) > 0 {
		n.node = raft.StartNode(rc, cfg.Peers)
	} else {
		n.node = raft.RestartNode(rc)
	}
	// A group of one has nobody to wait for: it campaigns as soon as raft
	// lets it (after the bootstrap conf changes are applied) rather than
	// after an election timeout, so a single member serves in milliseconds.
	n.campaign = n.soleVoter()
	go n.run()
	go n.readLoop()
	if n.campaign && len(cfg.Peers) == 0 {
		// A bootstrapping group must apply its conf changes first; the
		// Ready loop asks then.
		n.tryCampaign()
	}
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
// log (not when it is committed).
func (n *Node) Propose(ctx context.Context, data []byte) error {
	if err := n.node.Propose(ctx, data); err != nil {
		if errors.Is(err, raft.ErrStopped) {
			return ErrStopped
		}
		return err
	}
	return nil
}

// ProposeConfChange proposes a membership change.
func (n *Node) ProposeConfChange(ctx context.Context, cc raftpb.ConfChangeI) error {
	return n.node.ProposeConfChange(ctx, cc)
}

// ApplyConfChange applies a committed conf change to raft and returns the
// new ConfState, which the caller persists with its applied index.
func (n *Node) ApplyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState {
	return n.node.ApplyConfChange(cc)
}

// Step delivers a message from a peer.
func (n *Node) Step(ctx context.Context, m *raftpb.Message) error {
	return n.node.Step(ctx, m)
}

// ReportUnreachable tells raft that messages to id were lost.
func (n *Node) ReportUnreachable(id uint64) { n.node.ReportUnreachable(id) }

// ReportSnapshot tells raft how sending a snapshot to id ended.
func (n *Node) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	n.node.ReportSnapshot(id, status)
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

// Status returns raft's status.
func (n *Node) Status() raft.Status { return n.node.Status() }

// TransferLeadership asks raft to hand leadership to transferee.
func (n *Node) TransferLeadership(ctx context.Context, transferee uint64) {
	n.node.TransferLeadership(ctx, n.Leader(), transferee)
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
	defer n.node.Stop()
	for {
		select {
		case <-n.cfg.Tick:
			n.node.Tick()
		case rd := <-n.node.Ready():
			if err := n.handleReady(rd); err != nil {
				n.lg.Error("raft ready handling failed; stopping", zap.Error(err))
				n.fail(err)
				return
			}
			if n.campaign {
				n.tryCampaign()
			}
		case <-n.stopc:
			return
		}
	}
}

func (n *Node) handleReady(rd raft.Ready) error {
	if rd.SoftState != nil {
		n.state = rd.SoftState.RaftState
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
		select {
		case n.applyc <- sp:
		case <-n.stopc:
			return nil
		}
		select {
		case <-sp.done:
		case <-n.stopc:
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
		if !n.toApply(ap) {
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
		if !n.toApply(ap) {
			return nil
		}
	}
	if !leader {
		failpoint.Inject(failpoint.RaftBeforeFollowerSend)
		n.send(rd.Messages)
	}
	if ap != nil && containsConfChange(rd.CommittedEntries) {
		// The next Ready must be computed with the new configuration.
		select {
		case <-ap.done:
		case <-n.stopc:
			return nil
		}
	}
	failpoint.Inject(failpoint.RaftBeforeAdvance)
	n.node.Advance()
	return nil
}

// toApply hands ap to the apply loop; false means the node is stopping.
func (n *Node) toApply(ap *Apply) bool {
	select {
	case n.applyc <- ap:
		return true
	case <-n.stopc:
		return false
	}
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
		if err := n.node.ReadIndex(context.Background(), rctx); err != nil {
			return 0, fmt.Errorf("raftnode: read index: %w", err)
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
