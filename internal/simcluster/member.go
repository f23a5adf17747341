package simcluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"path/filepath"
	"strconv"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/metastore/metastore/internal/alarm"
	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/member/reconfig"
	"github.com/metastore/metastore/internal/member/snapinstall"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/raftsnap"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
	"github.com/metastore/metastore/internal/txn"
	"github.com/metastore/metastore/internal/watch"
)

// heartbeat is the wall-clock length of one raft tick, for the lessor's
// election-timeout arithmetic (lease extension on a new leader).
const heartbeat = 100 * time.Millisecond

// Member is one simulated member. Every field is touched only from the
// test's goroutine (through Cluster).
type Member struct {
	ID uint64
	c  *Cluster

	eng     storage.Engine
	raftLog *raftlog.Storage
	Store   *mvcc.Store
	Lessor  *lease.Lessor
	auth    *auth.Store
	alarms  *alarm.Store
	Members *membership.Store
	hub     *watch.Hub
	applier *apply.Applier
	wait    *apply.Wait
	recv    *raftsnap.Receiver
	snaps   *snapinstall.Installer
	raw     *raft.RawNode
	policy  *reconfig.Policy

	lead    uint64
	state   raft.StateType
	stopped bool
}

// open builds a member on eng: a fresh engine and peers for a new cluster,
// a fresh engine and no peers for a member joining one, or the engine of
// a stopped member to restart it.
func (c *Cluster) open(id uint64, eng storage.Engine, peers []raft.Peer) (*Member, error) {
	if eng == nil {
		eng = memory.New()
	}
	m := &Member{ID: id, c: c, eng: eng, wait: apply.NewWait()}
	lg := zap.NewNop()
	var err error
	snapDir := filepath.Join(c.dir, fmt.Sprintf("m%d", id))
	if _, err = raftsnap.Recover(eng, snapDir); err != nil {
		return nil, err
	}
	if m.raftLog, err = raftlog.Open(eng); err != nil {
		return nil, err
	}
	if m.Members, err = membership.Load(eng); err != nil {
		return nil, err
	}
	if m.Store, err = mvcc.Open(eng, lg); err != nil {
		return nil, err
	}
	if m.alarms, err = alarm.Load(eng); err != nil {
		return nil, err
	}
	tokens := auth.NewSimpleTokens(auth.SimpleOptions{Now: c.Clock.Now})
	if m.auth, err = auth.Open(eng, auth.Options{Tokens: tokens, BcryptCost: bcrypt.MinCost}); err != nil {
		return nil, err
	}
	if m.Lessor, err = lease.New(lease.Config{Engine: eng, ElectionTimeout: time.Duration(c.opts.ElectionTicks) * heartbeat, Clock: c.Clock, Logger: lg}); err != nil {
		return nil, err
	}
	m.hub = watch.NewHub(m.Store, lg, watch.Options{})
	m.Store.OnCommit(m.hub.Notify)
	m.recv = raftsnap.NewReceiver(eng, snapDir)
	m.snaps = snapinstall.New(snapinstall.Config{
		Engine: eng, Receiver: m.recv, RaftLog: m.raftLog, MVCC: m.Store, Leases: m.Lessor,
		Auth: m.auth, Alarms: m.alarms, Members: m.Members, Watch: m.hub,
		SyncPeers: func(ms []*membership.Member) { c.logf("%d: peers after snapshot %s", id, memberList(ms)) },
		Applied:   func() uint64 { return m.applier.AppliedIndex() },
		Commit:    func() uint64 { return m.raw.Status().GetCommit() },
		Logger:    lg,
	})
	if m.applier, err = apply.New(apply.Config{
		Engine: eng, Store: m.Store, Executor: txn.New(m.Store, m.Lessor, lg), Lessor: m.Lessor,
		Alarms: m.alarms, Auth: m.auth, RaftLog: m.raftLog, Members: m.Members,
		Conf: m, Snapshots: m.snaps, Observer: m, MaxLearners: c.opts.MaxLearners, Wait: m.wait,
		Logger: lg, SnapshotCount: c.opts.SnapshotCount, CatchupEntries: c.opts.CatchupEntries,
	}); err != nil {
		return nil, err
	}
	// The settings of internal/raftnode, with raft's own randomness the
	// only thing left: scripts elect with campaign or tick-election, whose
	// outcome does not depend on it.
	if m.raw, err = raft.NewRawNode(&raft.Config{
		ID:                        id,
		ElectionTick:              c.opts.ElectionTicks,
		HeartbeatTick:             1,
		Storage:                   m.raftLog,
		Applied:                   m.applier.AppliedIndex(),
		MaxSizePerMsg:             1 << 20,
		MaxInflightMsgs:           512,
		MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum:               true,
		StepDownOnRemoval:         true,
		PreVote:                   true,
		Logger:                    &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)},
	}); err != nil {
		return nil, err
	}
	if len(peers) > 0 {
		if err := m.raw.Bootstrap(peers); err != nil {
			return nil, err
		}
	}
	m.policy = &reconfig.Policy{
		Self:                id,
		Members:             m.Members,
		Status:              m.raw.Status,
		ActiveSince:         func(peer uint64) time.Time { return c.activeSince(id, peer) },
		Barrier:             m.caughtUp,
		StrictReconfigCheck: !c.opts.NoStrictReconfigCheck,
		Now:                 c.Clock.Now,
		Logger:              lg,
	}
	return m, nil
}

// caughtUp is the policy's barrier: applying is synchronous here, so the
// member has applied everything committed unless a Ready is pending.
func (m *Member) caughtUp(context.Context) error {
	if a, c := m.applier.AppliedIndex(), m.raw.Status().GetCommit(); a < c {
		return fmt.Errorf("simcluster: member %d applied %d of %d committed entries; process first", m.ID, a, c)
	}
	return nil
}

// ApplyConfChange implements apply.ConfChanger: the applier runs on the
// test's goroutine, inside handleReady, so raft is not running.
func (m *Member) ApplyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState {
	return m.raw.ApplyConfChange(cc)
}

// MemberAdded implements apply.MembershipObserver.
func (m *Member) MemberAdded(mb *membership.Member) {
	m.c.logf("%d: member %d added%s", m.ID, mb.ID, learnerTag(mb.IsLearner))
}

// MemberUpdated implements apply.MembershipObserver.
func (m *Member) MemberUpdated(mb *membership.Member) {
	m.c.logf("%d: member %d updated%s", m.ID, mb.ID, learnerTag(mb.IsLearner))
}

// MemberRemoved implements apply.MembershipObserver. A member that applied
// its own removal stops, as internal/member/peers makes a server stop.
func (m *Member) MemberRemoved(id uint64) {
	m.c.logf("%d: member %d removed", m.ID, id)
	if id == m.ID {
		m.stopped = true
		m.c.relink()
		m.c.logf("%d: stopped: removed from the cluster", m.ID)
	}
}

func learnerTag(l bool) string {
	if l {
		return " as learner"
	}
	return ""
}

// handleReady processes one Ready, with internal/raftnode's rules. It
// reports whether there was one.
func (m *Member) handleReady() (bool, error) {
	if m.stopped || !m.raw.HasReady() {
		return false, nil
	}
	rd := m.raw.Ready()
	if rd.SoftState != nil {
		m.state = rd.SoftState.RaftState
		if lead := rd.SoftState.Lead; lead != m.lead {
			wasLeader := m.lead == m.ID
			m.lead = lead
			m.c.logf("%d: leader is %d (term %d)", m.ID, lead, m.raw.BasicStatus().GetTerm())
			// What backend.RunLeaseExpiry does when leadership moves.
			switch {
			case lead == m.ID:
				m.Lessor.Promote(time.Duration(m.c.opts.ElectionTicks) * heartbeat)
			case wasLeader:
				m.Lessor.Demote()
			}
		}
	}
	for _, rs := range rd.ReadStates {
		m.c.logf("%d: read-index %s at %d", m.ID, rs.RequestCtx, rs.Index)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		md := rd.Snapshot.GetMetadata()
		if err := m.applier.InstallSnapshot(md); err != nil {
			return true, fmt.Errorf("member %d: %w", m.ID, err)
		}
		m.c.logf("%d: installed snapshot at %d (term %d)", m.ID, md.GetIndex(), md.GetTerm())
	}
	leader := m.lead == m.ID
	if leader {
		m.c.send(rd.Messages)
	}
	if err := m.raftLog.Save(rd.HardState, rd.Entries, rd.MustSync); err != nil {
		return true, fmt.Errorf("member %d: persist: %w", m.ID, err)
	}
	if !leader {
		m.c.send(rd.Messages)
	}
	if len(rd.CommittedEntries) > 0 {
		if err := m.applier.ApplyEntries(rd.CommittedEntries); err != nil {
			return true, fmt.Errorf("member %d: apply: %w", m.ID, err)
		}
		m.c.trace = append(m.c.trace, fmt.Sprintf("%d: applied to %d", m.ID, m.applier.AppliedIndex()))
	}
	m.raw.Advance(rd)
	return true, nil
}

// deliverSnapshot carries a MsgSnap as internal/transport does: the
// sender's snapinstall opens the image and rewrites the message, the
// receiver's stages the image, then raft gets the message.
func (c *Cluster) deliverSnapshot(from, to *Member, msg *raftpb.Message) error {
	out, img, err := from.snaps.OpenSnapshot(msg)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	_, err = img.WriteTo(&buf)
	img.Close()
	if err != nil {
		return err
	}
	size := buf.Len()
	if err := to.snaps.ReceiveSnapshot(context.Background(), out, &buf); err != nil {
		from.raw.ReportSnapshot(to.ID, raft.SnapshotFailure)
		return err
	}
	c.logf("%d->%d snapshot at %d (%d bytes)", from.ID, to.ID, out.GetSnapshot().GetMetadata().GetIndex(), size)
	if err := to.raw.Step(out); err != nil {
		return err
	}
	from.raw.ReportSnapshot(to.ID, raft.SnapshotFinish)
	return nil
}

func memberList(ms []*membership.Member) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatUint(m.ID, 10))
		if m.IsLearner {
			b.WriteString("(learner)")
		}
	}
	b.WriteByte(']')
	return b.String()
}
