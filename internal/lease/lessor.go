package lease

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/storage"
)

// MaxTTL is the largest TTL a lease may be granted (etcd's MaxLeaseTTL).
const MaxTTL = 9_000_000_000

// Errors of the lease domain; rpc maps the first three to etcd's rpctypes
// errors (same messages as etcd's lease package).
var (
	ErrLeaseNotFound    = errors.New("lease not found")
	ErrLeaseExists      = errors.New("lease already exists")
	ErrLeaseTTLTooLarge = errors.New("too large lease TTL")
	// ErrNotPrimary: this member does not time leases (it is not the
	// leader, or has not finished applying earlier terms' entries). The
	// backend forwards renewals and TimeToLive to the leader's lessor; a
	// client sees this only while leadership moves, and retries. The text
	// is etcd's lease.ErrNotPrimary.
	ErrNotPrimary = errors.New("not a primary lessor")
)

// Clock tells the time. Production uses the wall clock (with its monotonic
// reading); tests inject one they move by hand.
type Clock interface {
	Now() time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Config configures a Lessor.
type Config struct {
	// Engine is where l/ and L/ records are read from (the state as of the
	// last committed apply batch).
	Engine storage.Reader
	// ElectionTimeout gives the minimum TTL, ⌈1.5 × election timeout⌉
	// seconds, and the extension leases get when a new primary takes over
	// (etcd's Promote(electionTimeout)).
	ElectionTimeout time.Duration
	// CheckpointInterval is how often the primary checkpoints a lease's
	// remaining TTL through Raft (etcd's default, 5 min, when zero). Only
	// leases with more than this left are checkpointed.
	CheckpointInterval time.Duration
	// ExpiredRetryInterval is how long an expired lease handed out by
	// Expired waits before it is handed out again if its revocation did
	// not land (etcd: the request timeout; 7 s when zero).
	ExpiredRetryInterval time.Duration
	// RevokeRate bounds revocations per second (etcd: 1000 when zero). It
	// also spreads out expiries when a new primary takes over many leases.
	RevokeRate int
	Clock      Clock
	Logger     *zap.Logger
}

// lease is the in-memory state of one lease.
type lease struct {
	id        int64
	ttl       int64
	remaining int64     // checkpointed remaining TTL (0 = unset)
	expiry    time.Time // zero unless primary
	revoked   chan struct{}
}

func (l *lease) remainingOrTTL() int64 {
	if l.remaining > 0 {
		return l.remaining
	}
	return l.ttl
}

// Lessor owns the leases of one member.
type Lessor struct {
	cfg    Config
	minTTL int64
	clock  Clock
	lg     *zap.Logger

	mu       sync.RWMutex // guards leases, primary, demotec, promotec, expq, cpq
	leases   map[int64]*lease
	primary  bool
	demotec  chan struct{} // closed when demoted; valid while primary
	promotec chan struct{} // closed while primary
	expq     *timeQueue
	cpq      *timeQueue

	st stage // apply goroutine only
}

// stage is what the current apply batch changed, not yet visible to readers.
type stage struct {
	// recs: leases granted, revoked (nil) or checkpointed in this batch.
	recs map[int64]*record
	// attached: per lease, keys attached (true) or detached (false).
	attached map[int64]map[string]bool
	ops      []stagedOp
}

type opKind int

const (
	opGrant opKind = iota
	opRevoke
	opCheckpoint
)

type stagedOp struct {
	kind      opKind
	id        int64
	ttl       int64
	remaining int64
}

// New loads the leases stored in cfg.Engine. Leases start without an expiry
// until Promote: only the primary times them.
func New(cfg Config) (*Lessor, error) {
	if cfg.Engine == nil {
		return nil, errors.New("lease: Config.Engine is required")
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = 5 * time.Minute
	}
	if cfg.ExpiredRetryInterval <= 0 {
		cfg.ExpiredRetryInterval = 7 * time.Second
	}
	if cfg.RevokeRate <= 0 {
		cfg.RevokeRate = 1000
	}
	if cfg.Clock == nil {
		cfg.Clock = wallClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	le := &Lessor{
		cfg:      cfg,
		minTTL:   MinTTL(cfg.ElectionTimeout),
		clock:    cfg.Clock,
		lg:       cfg.Logger,
		promotec: make(chan struct{}),
	}
	if err := le.Reload(); err != nil {
		return nil, err
	}
	return le, nil
}

// MinTTL is the smallest TTL granted for an election timeout:
// ⌈1.5 × election timeout⌉ in seconds (2 s for etcd's default 1 s).
func MinTTL(electionTimeout time.Duration) int64 {
	return int64(math.Ceil((electionTimeout * 3 / 2).Seconds()))
}

// Reload replaces the in-memory state with what the engine holds (start-up,
// or after the engine was replaced by a Raft snapshot). It demotes the
// lessor and drops anything staged.
func (le *Lessor) Reload() error {
	it, err := le.cfg.Engine.NewIter(storage.IterOptions{
		LowerBound: storage.PrefixLease,
		UpperBound: storage.PrefixEnd(storage.PrefixLease),
	})
	if err != nil {
		return fmt.Errorf("lease: load: %w", err)
	}
	defer it.Close()
	leases := map[int64]*lease{}
	for ok := it.First(); ok; ok = it.Next() {
		id, r, err := decodeRecord(it.Key(), it.Value())
		if err != nil {
			return err
		}
		if r.ttl < le.minTTL {
			r.ttl = le.minTTL
		}
		leases[id] = &lease{id: id, ttl: r.ttl, remaining: r.remaining, revoked: make(chan struct{})}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("lease: load: %w", err)
	}
	le.mu.Lock()
	defer le.mu.Unlock()
	le.demoteLocked()
	le.leases = leases
	le.st = stage{}
	return nil
}

// ---- apply side: staging into the batch -------------------------------------

func (st *stage) init() {
	if st.recs == nil {
		st.recs = map[int64]*record{}
		st.attached = map[int64]map[string]bool{}
	}
}

// lookupStaged returns the lease's record as the apply batch sees it.
func (le *Lessor) lookupStaged(id int64) (record, bool) {
	if r, ok := le.st.recs[id]; ok {
		if r == nil {
			return record{}, false
		}
		return *r, true
	}
	le.mu.RLock()
	defer le.mu.RUnlock()
	l, ok := le.leases[id]
	if !ok {
		return record{}, false
	}
	return record{ttl: l.ttl, remaining: l.remaining}, true
}

// Exists reports whether lease id exists as the apply batch sees it. It is
// for the apply goroutine (txn's LeaseIndex); readers use Lookup.
func (le *Lessor) Exists(id int64) bool {
	_, ok := le.lookupStaged(id)
	return ok
}

// StageGrant grants lease id with ttl seconds (raised to the minimum) and
// returns the granted TTL. Request errors: ErrLeaseNotFound for id 0,
// ErrLeaseTTLTooLarge, ErrLeaseExists.
func (le *Lessor) StageGrant(b storage.Batch, id, ttl int64) (int64, error) {
	if id == 0 {
		return 0, ErrLeaseNotFound
	}
	if ttl > MaxTTL {
		return 0, ErrLeaseTTLTooLarge
	}
	if le.Exists(id) {
		return 0, ErrLeaseExists
	}
	if ttl < le.minTTL {
		ttl = le.minTTL
	}
	r := record{ttl: ttl}
	if err := b.Set(leaseKey(id), encodeRecord(r)); err != nil {
		return 0, fmt.Errorf("lease: stage grant %x: %w", id, err)
	}
	le.st.init()
	le.st.recs[id] = &r
	le.st.ops = append(le.st.ops, stagedOp{kind: opGrant, id: id, ttl: ttl})
	return ttl, nil
}

// StageRevoke removes lease id and its attachments from the batch and
// returns the attached keys, sorted, for the caller to delete in one write
// transaction. A missing lease gives ErrLeaseNotFound.
func (le *Lessor) StageRevoke(b storage.Batch, id int64) ([][]byte, error) {
	if !le.Exists(id) {
		return nil, ErrLeaseNotFound
	}
	keys, err := le.stagedKeys(id)
	if err != nil {
		return nil, err
	}
	p := leaseKeysPrefix(id)
	if err := b.DeleteRange(p, storage.PrefixEnd(p)); err != nil {
		return nil, fmt.Errorf("lease: stage revoke %x: %w", id, err)
	}
	if err := b.Delete(leaseKey(id)); err != nil {
		return nil, fmt.Errorf("lease: stage revoke %x: %w", id, err)
	}
	le.st.init()
	le.st.recs[id] = nil
	delete(le.st.attached, id)
	le.st.ops = append(le.st.ops, stagedOp{kind: opRevoke, id: id})
	return keys, nil
}

// stagedKeys lists the keys attached to id: those committed, plus and minus
// what this batch attached and detached.
func (le *Lessor) stagedKeys(id int64) ([][]byte, error) {
	committed, err := le.keys(id)
	if err != nil {
		return nil, err
	}
	pend := le.st.attached[id]
	if len(pend) == 0 {
		return committed, nil
	}
	set := make(map[string]bool, len(committed)+len(pend))
	for _, k := range committed {
		set[string(k)] = true
	}
	for k, on := range pend {
		if on {
			set[k] = true
		} else {
			delete(set, k)
		}
	}
	out := make([][]byte, 0, len(set))
	for k := range set {
		out = append(out, []byte(k))
	}
	slices.SortFunc(out, func(a, b []byte) int { return compareBytes(a, b) })
	return out, nil
}

func compareBytes(a, b []byte) int {
	switch {
	case string(a) < string(b):
		return -1
	case string(a) > string(b):
		return 1
	}
	return 0
}

// StageCheckpoint records remaining TTLs (etcd's LeaseCheckpoint). Leases
// that no longer exist are skipped; Remaining_TTL 0 clears a checkpoint.
func (le *Lessor) StageCheckpoint(b storage.Batch, cps []*pb.LeaseCheckpoint) error {
	for _, cp := range cps {
		id := cp.GetID()
		r, ok := le.lookupStaged(id)
		if !ok {
			continue
		}
		r.remaining = max(cp.GetRemaining_TTL(), 0)
		if err := b.Set(leaseKey(id), encodeRecord(r)); err != nil {
			return fmt.Errorf("lease: stage checkpoint %x: %w", id, err)
		}
		le.st.init()
		le.st.recs[id] = &r
		le.st.ops = append(le.st.ops, stagedOp{kind: opCheckpoint, id: id, remaining: r.remaining})
	}
	return nil
}

// Attach records that key is attached to lease id. ErrLeaseNotFound if the
// lease does not exist.
func (le *Lessor) Attach(b storage.Batch, id int64, key []byte) error {
	if !le.Exists(id) {
		return ErrLeaseNotFound
	}
	if err := b.Set(attachKey(id, key), nil); err != nil {
		return fmt.Errorf("lease: stage attach to %x: %w", id, err)
	}
	le.st.init()
	m := le.st.attached[id]
	if m == nil {
		m = map[string]bool{}
		le.st.attached[id] = m
	}
	m[string(key)] = true
	return nil
}

// Detach records that key no longer belongs to lease id. Detaching from a
// lease that is gone is not an error: nothing refers to it any more.
func (le *Lessor) Detach(b storage.Batch, id int64, key []byte) error {
	if err := b.Delete(attachKey(id, key)); err != nil {
		return fmt.Errorf("lease: stage detach from %x: %w", id, err)
	}
	le.st.init()
	m := le.st.attached[id]
	if m == nil {
		m = map[string]bool{}
		le.st.attached[id] = m
	}
	m[string(key)] = false
	return nil
}

// Commit makes what was staged visible. Call it after the batch committed.
func (le *Lessor) Commit() {
	ops := le.st.ops
	le.st = stage{}
	if len(ops) == 0 {
		return
	}
	now := le.clock.Now()
	le.mu.Lock()
	defer le.mu.Unlock()
	for _, op := range ops {
		switch op.kind {
		case opGrant:
			l := &lease{id: op.id, ttl: op.ttl, revoked: make(chan struct{})}
			le.leases[op.id] = l
			if le.primary {
				l.expiry = now.Add(time.Duration(l.ttl) * time.Second)
				le.expq.set(l.id, l.expiry)
				le.scheduleCheckpointLocked(l, now)
			}
		case opRevoke:
			if l, ok := le.leases[op.id]; ok {
				delete(le.leases, op.id)
				close(l.revoked)
			}
			if le.expq != nil {
				le.expq.remove(op.id)
				le.cpq.remove(op.id)
			}
		case opCheckpoint:
			if l, ok := le.leases[op.id]; ok {
				l.remaining = op.remaining
				if le.primary {
					le.scheduleCheckpointLocked(l, now)
				}
			}
		}
	}
}

// Discard drops what was staged (the batch was not committed).
func (le *Lessor) Discard() { le.st = stage{} }

// ---- primary: timing --------------------------------------------------------

// Promote makes this lessor the primary: every lease expires extend plus its
// remaining TTL (checkpointed, else granted) from now. When many leases
// would expire within the same second, later ones are pushed back so no
// more than 3/4 of the revoke rate expire per second (as etcd does).
func (le *Lessor) Promote(extend time.Duration) {
	now := le.clock.Now()
	le.mu.Lock()
	defer le.mu.Unlock()
	if le.primary {
		return
	}
	le.primary = true
	le.demotec = make(chan struct{})
	close(le.promotec)
	le.expq, le.cpq = newTimeQueue(), newTimeQueue()
	ls := make([]*lease, 0, len(le.leases))
	for _, l := range le.leases {
		l.expiry = now.Add(extend + time.Duration(l.remainingOrTTL())*time.Second)
		ls = append(ls, l)
	}
	if len(ls) >= le.cfg.RevokeRate {
		sort.Slice(ls, func(i, j int) bool { return ls[i].expiry.Before(ls[j].expiry) })
		target := max(3*le.cfg.RevokeRate/4, 1)
		base := ls[0].expiry
		next := base.Add(time.Second)
		n := 0
		for _, l := range ls {
			if l.expiry.After(next) {
				base, next, n = l.expiry, l.expiry.Add(time.Second), 1
				continue
			}
			n++
			if n <= target {
				continue
			}
			delay := time.Duration(float64(time.Second)*float64(n)/float64(target)) - l.expiry.Sub(base)
			next = base.Add(delay)
			l.expiry = l.expiry.Add(delay)
		}
	}
	for _, l := range ls {
		le.expq.set(l.id, l.expiry)
		le.scheduleCheckpointLocked(l, now)
	}
}

// Demote stops timing leases (this member is no longer the leader).
func (le *Lessor) Demote() {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.demoteLocked()
}

func (le *Lessor) demoteLocked() {
	if !le.primary {
		return
	}
	le.primary = false
	for _, l := range le.leases {
		l.expiry = time.Time{}
	}
	le.expq, le.cpq = nil, nil
	close(le.demotec)
	le.demotec = nil
	le.promotec = make(chan struct{})
}

// IsPrimary reports whether this lessor times leases.
func (le *Lessor) IsPrimary() bool {
	le.mu.RLock()
	defer le.mu.RUnlock()
	return le.primary
}

// WaitPrimary returns once the lessor is primary, or ctx's error.
func (le *Lessor) WaitPrimary(ctx context.Context) error {
	le.mu.RLock()
	ch := le.promotec
	le.mu.RUnlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (le *Lessor) scheduleCheckpointLocked(l *lease, now time.Time) {
	if time.Duration(l.remainingOrTTL())*time.Second > le.cfg.CheckpointInterval {
		le.cpq.set(l.id, now.Add(le.cfg.CheckpointInterval))
	} else {
		le.cpq.remove(l.id)
	}
}

// Renew refreshes lease id to its full TTL and returns the TTL. A lease
// that expired waits for its revocation (then ErrLeaseNotFound), as etcd's
// does, so a keep-alive cannot resurrect it. ErrNotPrimary if this lessor
// does not time leases.
func (le *Lessor) Renew(ctx context.Context, id int64) (int64, error) {
	now := le.clock.Now()
	le.mu.Lock()
	if !le.primary {
		le.mu.Unlock()
		return -1, ErrNotPrimary
	}
	l, ok := le.leases[id]
	if !ok {
		le.mu.Unlock()
		return -1, ErrLeaseNotFound
	}
	if !now.Before(l.expiry) {
		revoked, demoted := l.revoked, le.demotec
		le.mu.Unlock()
		select {
		case <-revoked:
			return -1, ErrLeaseNotFound
		case <-demoted:
			return -1, ErrNotPrimary
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}
	l.expiry = now.Add(time.Duration(l.ttl) * time.Second)
	le.expq.set(id, l.expiry)
	ttl := l.ttl
	le.mu.Unlock()
	return ttl, nil
}

// NeedsCheckpointClear reports whether lease id carries a checkpointed
// remaining TTL, which a renewal must clear through Raft first: otherwise a
// restart would restore the stale, shorter TTL.
func (le *Lessor) NeedsCheckpointClear(id int64) bool {
	le.mu.RLock()
	defer le.mu.RUnlock()
	l, ok := le.leases[id]
	return ok && l.remaining > 0
}

// Status is what Lookup tells about a lease.
type Status struct {
	ID         int64
	GrantedTTL int64
	// Remaining is the time left; meaningful only when Primary.
	Remaining time.Duration
	Primary   bool
}

// TTL is the remaining TTL in whole seconds as etcd reports it (truncated).
func (s Status) TTL() int64 { return int64(s.Remaining.Seconds()) }

// Lookup returns lease id's status as of the last committed batch.
func (le *Lessor) Lookup(id int64) (Status, bool) {
	now := le.clock.Now()
	le.mu.RLock()
	defer le.mu.RUnlock()
	l, ok := le.leases[id]
	if !ok {
		return Status{}, false
	}
	return le.statusLocked(l, now), true
}

func (le *Lessor) statusLocked(l *lease, now time.Time) Status {
	s := Status{ID: l.id, GrantedTTL: l.ttl, Primary: le.primary}
	if le.primary {
		s.Remaining = l.expiry.Sub(now)
	} else {
		s.Remaining = time.Duration(l.remainingOrTTL()) * time.Second
	}
	return s
}

// Leases lists every lease, soonest expiry first.
func (le *Lessor) Leases() []Status {
	now := le.clock.Now()
	le.mu.RLock()
	out := make([]Status, 0, len(le.leases))
	for _, l := range le.leases {
		out = append(out, le.statusLocked(l, now))
	}
	le.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Remaining != out[j].Remaining {
			return out[i].Remaining < out[j].Remaining
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Keys returns the keys attached to lease id as of the last committed batch,
// in key order.
func (le *Lessor) Keys(id int64) ([][]byte, error) { return le.keys(id) }

func (le *Lessor) keys(id int64) ([][]byte, error) {
	p := leaseKeysPrefix(id)
	it, err := le.cfg.Engine.NewIter(storage.IterOptions{LowerBound: p, UpperBound: storage.PrefixEnd(p)})
	if err != nil {
		return nil, fmt.Errorf("lease: keys of %x: %w", id, err)
	}
	defer it.Close()
	var out [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, append([]byte{}, it.Key()[len(p):]...))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("lease: keys of %x: %w", id, err)
	}
	return out, nil
}

// Expired returns up to limit leases whose time is up, soonest first. Each
// one handed out is not handed out again for ExpiredRetryInterval, giving
// its revocation time to land.
func (le *Lessor) Expired(limit int) []int64 {
	now := le.clock.Now()
	le.mu.Lock()
	defer le.mu.Unlock()
	if !le.primary {
		return nil
	}
	var out []int64
	for len(out) < limit {
		it := le.expq.peek()
		if it == nil || now.Before(it.at) {
			break
		}
		l, ok := le.leases[it.id]
		if !ok {
			le.expq.remove(it.id)
			continue
		}
		le.expq.set(it.id, now.Add(le.cfg.ExpiredRetryInterval))
		if !now.Before(l.expiry) {
			out = append(out, l.id)
		}
	}
	return out
}

// DueCheckpoints returns up to limit remaining-TTL checkpoints that are due.
func (le *Lessor) DueCheckpoints(limit int) []*pb.LeaseCheckpoint {
	now := le.clock.Now()
	le.mu.Lock()
	defer le.mu.Unlock()
	if !le.primary {
		return nil
	}
	var out []*pb.LeaseCheckpoint
	for len(out) < limit {
		it := le.cpq.peek()
		if it == nil || now.Before(it.at) {
			break
		}
		le.cpq.popMin()
		l, ok := le.leases[it.id]
		if !ok || !now.Before(l.expiry) {
			continue
		}
		rem := int64(math.Ceil(l.expiry.Sub(now).Seconds()))
		if rem >= l.ttl {
			continue
		}
		out = append(out, &pb.LeaseCheckpoint{ID: l.id, Remaining_TTL: rem})
	}
	return out
}
