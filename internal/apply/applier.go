package apply

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/alarm"
	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/downgrade"
	"github.com/metastore/metastore/internal/failpoint"
	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/migrate/mode"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/raftnode"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/txn"
)

// ConfChanger applies committed membership changes to raft.
type ConfChanger interface {
	ApplyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState
}

// SnapshotInstaller replaces the state with a snapshot received from the
// leader and rebuilds everything derived from it; the server provides it.
type SnapshotInstaller interface {
	InstallSnapshot(md *raftpb.SnapshotMetadata) error
}

// MembershipObserver learns about applied membership changes, after their
// batch committed, so that the transport can reach new members and a
// removed member can stop.
type MembershipObserver interface {
	MemberAdded(m *membership.Member)
	MemberUpdated(m *membership.Member)
	MemberRemoved(id uint64)
}

// Hooks observe the applier; nil fields are skipped.
type Hooks struct {
	Applied func(n int)
	// CommitSeconds observes how long each apply batch took to commit.
	CommitSeconds func(seconds float64)
	// Put, Delete, Txn count MVCC operations for etcd's metrics.
	Put, Delete, Txn func()
	// SlowApply counts requests slower than Config.WarnApplyDuration.
	SlowApply func()
}

// Config wires an Applier.
type Config struct {
	Engine   storage.Engine
	Store    *mvcc.Store
	Executor *txn.Executor
	Lessor   *lease.Lessor // nil: no leases
	Alarms   *alarm.Store  // nil: no alarms
	Auth     *auth.Store   // nil: no auth
	RaftLog  *raftlog.Storage
	Members  *membership.Store
	Conf     ConfChanger
	// Snapshots installs snapshots from the leader (nil: none expected).
	Snapshots SnapshotInstaller
	// Observer is told about membership changes (nil: nobody).
	Observer MembershipObserver
	// MaxLearners bounds learners at apply, as etcd's --max-learners.
	MaxLearners int
	Wait        *Wait
	Logger      *zap.Logger
	Hooks       Hooks
	// SnapshotCount and CatchupEntries bound the Raft log: after
	// SnapshotCount applied entries the log is cut back to the last
	// CatchupEntries (etcd's --snapshot-count, --snapshot-catchup-entries).
	SnapshotCount  uint64
	CatchupEntries uint64
	// CatchupBytes bounds the log by the size of its entries as well
	// (--snapshot-catchup-bytes; 0: no bound): once that many bytes of
	// entries were applied since the last cut, the log is cut, and a cut
	// keeps at most that many bytes of the newest entries (at least one
	// entry). With entries of large transactions (~600 KB each in a bulk
	// load) the count alone kept 3-9 GB of log in the engine, as much as
	// the data itself (docs/benchmarks.md, Scale).
	CatchupBytes uint64
	// WarnApplyDuration is --warning-apply-duration: a request whose apply
	// takes longer is logged with its summary (0: never).
	WarnApplyDuration time.Duration
}

// Applier applies committed entries.
type Applier struct {
	cfg Config
	lg  *zap.Logger

	applied     atomic.Uint64
	appliedTerm atomic.Uint64
	lastCompact uint64
	// sizes tracks the entries applied since the log's last cut, for
	// CatchupBytes; only the apply goroutine touches it.
	sizes entrySizes

	mu      sync.Mutex    // guards advance
	advance chan struct{} // closed and replaced whenever applied moves
}

// New returns an Applier that resumes after the applied index stored in the
// engine.
func New(cfg Config) (*Applier, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	a := &Applier{cfg: cfg, lg: cfg.Logger, advance: make(chan struct{})}
	idx, term, err := ReadAppliedIndex(cfg.Engine)
	if err != nil {
		return nil, err
	}
	a.applied.Store(idx)
	a.appliedTerm.Store(term)
	a.lastCompact = idx
	a.sizes.reset(idx, true)
	return a, nil
}

// ReadAppliedIndex returns the applied index and its term stored in r.
func ReadAppliedIndex(r storage.Reader) (index, term uint64, err error) {
	v, err := r.Get(storage.KeyAppliedIndex)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("apply: read applied index: %w", err)
	}
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("apply: applied index record has %d bytes, want 16", len(v))
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), nil
}

// AppliedIndex returns the last applied raft index.
func (a *Applier) AppliedIndex() uint64 { return a.applied.Load() }

// AppliedTerm returns the term of the last applied entry.
func (a *Applier) AppliedTerm() uint64 { return a.appliedTerm.Load() }

// WaitApplied blocks until the applied index reaches index.
func (a *Applier) WaitApplied(ctx context.Context, index uint64) error {
	for {
		a.mu.Lock()
		ch := a.advance
		a.mu.Unlock()
		if a.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run applies until applies is closed. A failure to apply is fatal: the
// state machine cannot skip an entry and stay identical to its peers.
func (a *Applier) Run(applies <-chan *raftnode.Apply) error {
	for ap := range applies {
		if ap.Snapshot != nil {
			if err := a.installSnapshot(ap.Snapshot.GetMetadata()); err != nil {
				ap.Fail(err)
				return err
			}
			ap.Done()
			continue
		}
		err := a.ApplyEntries(ap.Entries)
		ap.Done()
		if err != nil {
			return err
		}
	}
	return nil
}

// installSnapshot replaces the state with the staged snapshot md describes.
func (a *Applier) installSnapshot(md *raftpb.SnapshotMetadata) error {
	if a.cfg.Snapshots == nil {
		return fmt.Errorf("apply: no snapshot installer for the snapshot at index %d", md.GetIndex())
	}
	if md.GetIndex() <= a.applied.Load() {
		return fmt.Errorf("apply: snapshot at index %d is not ahead of the applied index %d", md.GetIndex(), a.applied.Load())
	}
	if a.cfg.Lessor != nil {
		a.cfg.Lessor.Discard()
	}
	if err := a.cfg.Snapshots.InstallSnapshot(md); err != nil {
		return fmt.Errorf("apply: install snapshot at index %d: %w", md.GetIndex(), err)
	}
	a.applied.Store(md.GetIndex())
	a.appliedTerm.Store(md.GetTerm())
	a.lastCompact = md.GetIndex()
	a.sizes.reset(md.GetIndex(), false)
	a.mu.Lock()
	close(a.advance)
	a.advance = make(chan struct{})
	a.mu.Unlock()
	return nil
}

type pending struct {
	id     uint64
	result Result
}

// ApplyEntries applies ents in one engine batch.
func (a *Applier) ApplyEntries(ents []*raftpb.Entry) error {
	applying := time.Now()
	applied := a.applied.Load()
	b := a.cfg.Engine.NewBatch()
	defer b.Close()
	committed := false
	defer func() {
		if !committed && a.cfg.Lessor != nil {
			a.cfg.Lessor.Discard() // the batch is dropped: so are its staged lease changes
		}
	}()
	w := a.cfg.Store.NewWriter(b)
	defer w.Close()
	var (
		// Nearly every entry of a busy batch has a waiter: size it once.
		waiters = make([]pending, 0, len(ents))
		after   []func() // in-memory effects once the batch is committed
		last    *raftpb.Entry
		n       int
		compact bool // the batch schedules a compaction (failpoints only)
	)
	for _, e := range ents {
		if e.GetIndex() <= applied {
			continue // replayed below the applied index: already in the state
		}
		last = e
		n++
		if a.cfg.CatchupBytes > 0 && a.cfg.SnapshotCount > 0 {
			a.sizes.add(e.GetIndex(), uint64(len(e.Data)))
		}
		switch e.GetType() {
		case raftpb.EntryType_EntryNormal:
			if len(e.Data) == 0 {
				continue // a new leader's empty entry
			}
			failpoint.Inject(failpoint.BeforeApplyOneEntryNormal)
			req, err := a.request(e)
			if err != nil {
				return err
			}
			compact = compact || req.Compaction != nil
			id := req.GetID()
			if h := req.GetHeader(); h != nil && h.GetID() != 0 {
				id = h.GetID()
			}
			began := time.Now()
			res, fn, err := a.applyRequest(w, b, req)
			if err != nil {
				return fmt.Errorf("apply: entry %d: %w", e.GetIndex(), err)
			}
			if d := time.Since(began); a.cfg.WarnApplyDuration > 0 && d > a.cfg.WarnApplyDuration {
				a.warnSlow(req, res, d)
			}
			if fn != nil {
				after = append(after, fn)
			}
			waiters = append(waiters, pending{id, res})
		case raftpb.EntryType_EntryConfChange, raftpb.EntryType_EntryConfChangeV2:
			failpoint.Inject(failpoint.BeforeApplyOneConfChange)
			fn, p, err := a.applyConfChange(b, e)
			if err != nil {
				return fmt.Errorf("apply: entry %d: %w", e.GetIndex(), err)
			}
			after = append(after, fn)
			if p.id != 0 {
				waiters = append(waiters, p)
			}
		default:
			return fmt.Errorf("apply: entry %d: unknown type %v", e.GetIndex(), e.GetType())
		}
	}
	if last == nil {
		committed = true // nothing staged
		return nil
	}
	if err := w.Finish(); err != nil {
		// A storage error mid-way leaves the batch half-staged; committing
		// it would make this member diverge from its peers.
		return fmt.Errorf("apply: entries up to %d: %w", last.GetIndex(), err)
	}
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, last.GetIndex())
	binary.BigEndian.PutUint64(v[8:], last.GetTerm())
	if err := b.Set(storage.KeyAppliedIndex, v); err != nil {
		return fmt.Errorf("apply: stage applied index: %w", err)
	}
	// Not synced: the raft log holding these entries is, so a crash replays
	// them from the last applied index that did reach the disk.
	start := time.Now()
	if compact {
		failpoint.Inject(failpoint.CompactBeforeCommitScheduledCompact)
	}
	failpoint.Inject(failpoint.BeforeCommit)
	if err := b.Commit(false); err != nil {
		return fmt.Errorf("apply: commit entries up to %d: %w", last.GetIndex(), err)
	}
	written := time.Now()
	failpoint.Inject(failpoint.AfterCommit)
	if compact {
		failpoint.Inject(failpoint.CompactAfterCommitScheduledCompact)
	}
	if h := a.cfg.Hooks.CommitSeconds; h != nil {
		h(written.Sub(start).Seconds())
	}
	committed = true
	w.Commit()
	if a.cfg.Lessor != nil {
		a.cfg.Lessor.Commit()
	}
	for _, fn := range after {
		fn()
	}
	a.applied.Store(last.GetIndex())
	a.appliedTerm.Store(last.GetTerm())
	a.mu.Lock()
	close(a.advance)
	a.advance = make(chan struct{})
	a.mu.Unlock()
	if len(waiters) > 0 {
		tm := &Timing{Applying: applying, Writing: start, Written: written}
		for _, p := range waiters {
			p.result.Timing = tm
			a.cfg.Wait.Trigger(p.id, p.result)
		}
	}
	if h := a.cfg.Hooks.Applied; h != nil {
		h(n)
	}
	a.maybeCompactLog(last.GetIndex())
	return nil
}

// request returns the request normal entry e carries. On the member that
// proposed it, that is the request the proposer registered when e holds
// exactly the bytes the proposer encoded it to: decoding them would only
// rebuild that request (the backend registers only requests that gRPC
// decoded, which an encode-decode round trip leaves as they are), so the
// state and results are the same as on the members that decode, and the
// leader saves a decode per write. Anything else is decoded.
func (a *Applier) request(e *raftpb.Entry) (*pb.InternalRaftRequest, error) {
	if id, ok := entryID(e.Data); ok && id != 0 {
		if req := a.cfg.Wait.Proposed(id, e.Data); req != nil {
			return req, nil
		}
	}
	req := new(pb.InternalRaftRequest)
	if err := proto.Unmarshal(e.Data, req); err != nil {
		return nil, fmt.Errorf("apply: entry %d: decode request: %w", e.GetIndex(), err)
	}
	return req, nil
}

func (a *Applier) maybeCompactLog(applied uint64) {
	if a.cfg.SnapshotCount == 0 {
		return
	}
	byBytes := a.cfg.CatchupBytes > 0 && a.sizes.sinceCut >= a.cfg.CatchupBytes
	if applied-a.lastCompact < a.cfg.SnapshotCount && !byBytes {
		return
	}
	a.lastCompact = applied
	a.sizes.sinceCut = 0
	keep := a.cfg.CatchupEntries
	if a.cfg.CatchupBytes > 0 {
		keep = a.sizes.keep(applied, keep, a.cfg.CatchupBytes)
	}
	if applied <= keep {
		return
	}
	failpoint.Inject(failpoint.RaftBeforeCompactLog)
	if err := a.cfg.RaftLog.Compact(applied - keep); err != nil {
		// Only disk space is at stake; the next round tries again.
		a.lg.Warn("raft log compaction failed", zap.Uint64("applied", applied), zap.Error(err))
	} else {
		a.sizes.trim(applied - keep)
	}
	failpoint.Inject(failpoint.RaftAfterCompactLog)
}

// gate returns the alarm error r gets, if any. It is decided here, at
// apply, from replicated alarm state, so every member refuses the same
// entries.
func (a *Applier) gate(r *pb.InternalRaftRequest) error {
	if a.cfg.Alarms == nil {
		return nil
	}
	switch {
	case r.Put != nil, r.LeaseGrant != nil:
		return a.cfg.Alarms.Check(true)
	case r.Txn != nil:
		return a.cfg.Alarms.Check(!txn.IsTxnReadOnly(r.Txn))
	case r.DeleteRange != nil, r.Compaction != nil, r.LeaseRevoke != nil:
		return a.cfg.Alarms.Check(false)
	}
	return nil
}

// applyRequest executes one request and returns its in-memory effect to run
// after the batch commits. A returned error is fatal; request failures (a
// compare that fails, a missing lease) travel in Result.Err.
func (a *Applier) applyRequest(w *mvcc.Writer, b storage.Batch, r *pb.InternalRaftRequest) (Result, func(), error) {
	if err := a.gate(r); err != nil {
		return Result{Err: err}, nil, nil
	}
	if res, after, handled, err := a.applyAuth(b, r); handled {
		return res, after, err
	}
	if r.ClusterMemberAttrSet != nil {
		return a.applyMemberAttrs(b, r.ClusterMemberAttrSet)
	}
	if r.DowngradeInfoSet != nil {
		return Result{Resp: &struct{}{}}, nil, downgrade.Stage(b, r.DowngradeInfoSet)
	}
	if token, ok := mode.IsEnd(r); ok {
		// The cut-over of an online migration (internal/migrate/mode).
		failure, err := mode.StageEnd(b, a.cfg.Engine, token)
		return Result{Resp: &struct{}{}, Err: failure}, nil, err
	}
	if r.Alarm != nil {
		if a.cfg.Alarms == nil {
			return Result{Resp: &pb.AlarmResponse{}}, nil, nil
		}
		resp, fn, err := a.cfg.Alarms.Stage(b, r.Alarm)
		if err != nil {
			return Result{}, nil, err
		}
		return Result{Resp: resp}, fn, nil
	}
	if res, handled, after, err := a.applyLease(w, b, r); handled {
		// The lessor publishes its staged changes itself in Commit, after
		// the batch is durable; nothing may change memory before that.
		if after != nil {
			return Result{}, nil, fmt.Errorf("apply: lease applier returned an effect to run before commit")
		}
		return res, nil, err
	}
	ex := a.cfg.Executor
	h := a.cfg.Hooks
	switch {
	case r.Put != nil:
		resp, _, err := ex.Put(w, r.Put)
		if err == nil && h.Put != nil {
			h.Put()
		}
		return Result{Resp: resp, Err: err}, nil, nil
	case r.DeleteRange != nil:
		resp, _, err := ex.DeleteRange(w, r.DeleteRange)
		if err == nil && h.Delete != nil {
			h.Delete()
		}
		return Result{Resp: resp, Err: err}, nil, nil
	case r.Txn != nil:
		resp, _, err := ex.Txn(w, r.Txn)
		if err == nil && h.Txn != nil {
			h.Txn()
		}
		return Result{Resp: resp, Err: err}, nil, nil
	case r.Compaction != nil:
		done, err := w.Compact(r.Compaction.GetRevision())
		if err != nil {
			return Result{Err: err}, nil, nil
		}
		resp := &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: a.cfg.Store.Rev()}}
		return Result{Resp: resp, Physical: done}, nil, nil
	}
	return Result{Err: fmt.Errorf("apply: unsupported request %v", describe(r))}, nil, nil
}

// applyMemberAttrs records a member's name and client URLs, which each
// member publishes through Raft once it serves, so that MemberList shows
// every member's client URLs on every member.
//
// The in-memory list changes at once, as stageMemberChange's does, not
// after the batch commits: a member replaying the log applies a publish
// and a later removal or promotion of the same member in one batch, and
// putting the copy read here back after the commit would resurrect the
// removed member (or demote the promoted one) on that member only. Its
// member list, and through Validate its raft configuration, would then
// differ from the members that applied the same entries in several
// batches (internal/simcluster/testdata/member_replay).
func (a *Applier) applyMemberAttrs(b storage.Batch, r *membershippb.ClusterMemberAttrSetRequest) (Result, func(), error) {
	id := r.GetMember_ID()
	m := a.cfg.Members.Member(id)
	if m == nil {
		// Removed before this entry, or never added: as etcd, ignore the
		// attributes rather than bring the member back.
		return Result{Resp: &struct{}{}}, nil, nil
	}
	if attrs := r.GetMemberAttributes(); attrs != nil {
		m.Name = attrs.GetName()
		m.ClientURLs = append([]string(nil), attrs.GetClientUrls()...)
	}
	if err := membership.StagePut(b, m); err != nil {
		return Result{}, nil, err
	}
	a.cfg.Members.Put(m)
	return Result{Resp: &struct{}{}}, nil, nil
}

// warnSlow logs a slow apply in etcd's words: the request summary (values
// shown only by size) and the response size.
func (a *Applier) warnSlow(r *pb.InternalRaftRequest, res Result, d time.Duration) {
	var resp string
	if m, ok := res.Resp.(proto.Message); ok && m != nil && !reflect.ValueOf(m).IsNil() {
		resp = fmt.Sprintf("size:%d", proto.Size(m))
	}
	a.lg.Warn("apply request took too long",
		zap.Duration("took", d),
		zap.Duration("expected-duration", a.cfg.WarnApplyDuration),
		zap.String("prefix", ""),
		zap.String("request", (&pb.InternalRaftStringer{Request: r}).String()),
		zap.String("response", resp),
		zap.Error(res.Err),
	)
	if h := a.cfg.Hooks.SlowApply; h != nil {
		h()
	}
}

func describe(r *pb.InternalRaftRequest) string {
	s := fmt.Sprintf("%v", r)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// applyConfChange applies a membership change to raft and stages its
// persistent effects; the returned func makes them visible after commit.
// A change the members refuse (etcd's ValidateConfigurationChange) is
// applied to raft as a no-op and its error goes to the proposer.
func (a *Applier) applyConfChange(b storage.Batch, e *raftpb.Entry) (func(), pending, error) {
	if e.GetType() == raftpb.EntryType_EntryConfChangeV2 {
		// Never proposed by metastore; applied to raft for completeness.
		var cc raftpb.ConfChangeV2
		if err := proto.Unmarshal(e.Data, &cc); err != nil {
			return nil, pending{}, fmt.Errorf("decode conf change v2: %w", err)
		}
		cs := a.cfg.Conf.ApplyConfChange(&cc)
		if err := raftlog.StageConfState(b, cs); err != nil {
			return nil, pending{}, err
		}
		return func() { a.cfg.RaftLog.SetConfState(cs) }, pending{}, nil
	}
	var cc raftpb.ConfChange
	if err := proto.Unmarshal(e.Data, &cc); err != nil {
		return nil, pending{}, fmt.Errorf("decode conf change: %w", err)
	}
	var verr error
	if len(cc.Context) > 0 || cc.GetType() == raftpb.ConfChangeType_ConfChangeRemoveNode {
		verr = a.cfg.Members.Validate(&cc, a.maxLearners())
	}
	if verr != nil {
		// raft skips changes to node 0, as etcd relies on too.
		cc.NodeId = proto.Uint64(0)
	}
	cs := a.cfg.Conf.ApplyConfChange(&cc)
	if err := raftlog.StageConfState(b, cs); err != nil {
		return nil, pending{}, err
	}
	done := pending{id: cc.GetId(), result: Result{Err: verr}}
	var effect func()
	if verr == nil {
		var err error
		if effect, err = a.stageMemberChange(b, &cc); err != nil {
			return nil, pending{}, err
		}
	}
	return func() {
		a.cfg.RaftLog.SetConfState(cs)
		if effect != nil {
			effect()
		}
	}, done, nil
}

func (a *Applier) maxLearners() int {
	if a.cfg.MaxLearners > 0 {
		return a.cfg.MaxLearners
	}
	return 1 // etcd's default --max-learners
}

// stageMemberChange stages a validated change to the member list. The
// in-memory list changes at once, not after the commit: the next conf
// change in the same batch must be validated against it, or a member
// applying the two in one batch would decide differently from one applying
// them in two. A failed commit stops the member anyway.
func (a *Applier) stageMemberChange(b storage.Batch, cc *raftpb.ConfChange) (func(), error) {
	obs := a.cfg.Observer
	id := cc.GetNodeId()
	switch cc.GetType() {
	case raftpb.ConfChangeType_ConfChangeAddNode, raftpb.ConfChangeType_ConfChangeAddLearnerNode:
		if len(cc.Context) == 0 {
			return nil, nil
		}
		ctx, err := membership.DecodeContext(cc.Context)
		if err != nil {
			return nil, err
		}
		if ctx.IsPromote {
			m := a.cfg.Members.Member(id)
			m.IsLearner = false
			if err := membership.StagePut(b, m); err != nil {
				return nil, err
			}
			a.cfg.Members.Put(m)
			return func() {
				if obs != nil {
					obs.MemberUpdated(m)
				}
			}, nil
		}
		m := ctx.Member
		m.ID = id
		m.IsLearner = cc.GetType() == raftpb.ConfChangeType_ConfChangeAddLearnerNode
		if err := membership.StagePut(b, &m); err != nil {
			return nil, err
		}
		a.cfg.Members.Put(&m)
		return func() {
			if obs != nil {
				obs.MemberAdded(&m)
			}
		}, nil
	case raftpb.ConfChangeType_ConfChangeRemoveNode:
		if err := membership.StageRemove(b, id); err != nil {
			return nil, err
		}
		a.cfg.Members.Remove(id)
		return func() {
			if obs != nil {
				obs.MemberRemoved(id)
			}
		}, nil
	case raftpb.ConfChangeType_ConfChangeUpdateNode:
		ctx, err := membership.DecodeContext(cc.Context)
		if err != nil {
			return nil, err
		}
		m := a.cfg.Members.Member(id)
		m.PeerURLs = append([]string(nil), ctx.PeerURLs...)
		if err := membership.StagePut(b, m); err != nil {
			return nil, err
		}
		a.cfg.Members.Put(m)
		return func() {
			if obs != nil {
				obs.MemberUpdated(m)
			}
		}, nil
	}
	return nil, nil
}
