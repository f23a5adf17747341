package mvcc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/respbudget"
	"github.com/metastore/metastore/internal/storage"
)

var (
	// ErrCompacted: the requested revision was compacted away.
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	// ErrFutureRev: the requested revision is newer than the current one.
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")
)

// Option tunes a Store.
type Option func(*options)

type options struct {
	compactionBatchLimit int
	compactionSleep      time.Duration
	latestCacheBytes     int64
}

// WithLatestCacheBytes bounds the cache of the newest version of keys that
// writes consult instead of the engine (see latestCache); 0 disables it.
func WithLatestCacheBytes(n int64) Option {
	return func(o *options) {
		if n >= 0 {
			o.latestCacheBytes = n
		}
	}
}

// WithCompactionBatchLimit bounds how many revisions one background
// compaction batch deletes (etcd's --compaction-batch-limit, default 1000).
func WithCompactionBatchLimit(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.compactionBatchLimit = n
		}
	}
}

// WithCompactionSleepInterval is the pause between two compaction batches
// (etcd's --compaction-sleep-interval, default 10ms); 0 means no pause.
func WithCompactionSleepInterval(d time.Duration) Option {
	return func(o *options) {
		if d >= 0 {
			o.compactionSleep = d
		}
	}
}

// Store is the revisioned key-value store. Reads are safe from any goroutine;
// writes go through one Writer at a time (the apply goroutine).
type Store struct {
	eng  storage.Engine
	lg   *zap.Logger
	opts options

	currentRev atomic.Int64
	compactRev atomic.Int64
	keyCount   atomic.Int64

	writtenBytes   atomic.Int64 // owned by the Writer
	compactedBytes atomic.Int64 // owned by the compactor

	onCommit atomic.Pointer[func(rev int64, events []*mvccpb.Event)]

	comp atomic.Pointer[compactor]

	// latest caches keys' newest versions for the Writer; it has its own
	// lock.
	latest *latestCache

	// closed is set by Close: the counters above may then lag the engine,
	// which another Store may have opened since (CheckInvariants).
	closed atomic.Bool

	hashMu sync.Mutex     // guards hashes
	hashes []recordedHash // hashes recorded by recent compactions
}

// Open loads the store's revisions from the engine and resumes an unfinished
// compaction in the background. Close stops the background work; it must be
// called before the engine is closed.
func Open(eng storage.Engine, lg *zap.Logger, opts ...Option) (*Store, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	s := &Store{eng: eng, lg: lg, opts: options{compactionBatchLimit: 1000, compactionSleep: 10 * time.Millisecond,
		latestCacheBytes: DefaultLatestCacheBytes}}
	for _, o := range opts {
		o(&s.opts)
	}
	s.latest = newLatestCache(s.opts.latestCacheBytes)
	if err := s.load(true); err != nil {
		return nil, err
	}
	return s, nil
}

// load reads the store's counters from the engine and starts background
// compaction, resuming an unfinished one. fill says whether to fill the
// latest-version cache from the engine (Open) or to start it empty
// (Reload).
func (s *Store) load(fill bool) error {
	eng := s.eng
	cur, ok, err := readInt64(eng, storage.KeyCurrentRevision)
	if err != nil {
		return err
	}
	if !ok || cur < 1 {
		cur = 1 // etcd starts an empty store at revision 1
	}
	finished, finOK, err := readInt64(eng, storage.KeyCompactRevision)
	if err != nil {
		return err
	}
	scheduled, schOK, err := readInt64(eng, storage.KeyScheduledCompact)
	if err != nil {
		return err
	}
	kc, _, err := readInt64(eng, keyKeyCount)
	if err != nil {
		return err
	}
	compact := int64(-1)
	if finOK {
		compact = finished
	}
	written, _, err := readInt64(eng, keyWrittenBytes)
	if err != nil {
		return err
	}
	compacted, _, err := readInt64(eng, keyCompactedBytes)
	if err != nil {
		return err
	}
	s.writtenBytes.Store(written)
	s.compactedBytes.Store(compacted)
	// Before compaction resumes, which never changes a newest live version
	// anyway.
	publish := func() { s.currentRev.Store(cur) }
	if fill {
		if err := s.latest.load(eng, publish); err != nil {
			return err
		}
	} else {
		s.latest.reset(publish)
	}
	s.keyCount.Store(kc)
	comp := newCompactor(s)
	s.comp.Store(comp)
	if schOK && scheduled > compact {
		prev := compact
		compact = scheduled
		s.lg.Info("resuming unfinished compaction", zap.Int64("compact-revision", scheduled), zap.Int64("finished-compact-revision", prev))
		s.compactRev.Store(compact)
		comp.enqueue(newCompactJob(scheduled, prev))
	} else {
		s.compactRev.Store(compact)
	}
	return nil
}

// StopCompaction stops background compaction, which writes to the engine
// outside the apply loop, before the engine's state is replaced by a Raft
// snapshot. Reload restarts it.
func (s *Store) StopCompaction() { s.comp.Load().stop() }

// Reload re-reads the store's state from the engine after a Raft snapshot
// replaced it (StopCompaction first), and restarts background compaction.
// Only the apply goroutine may call it.
//
// Unlike Open, Reload does not fill the latest-version cache: with values
// of 1 KiB and more in blob files, filling it reads every value (1.0–2.4 s
// per GiB of image measured), on the apply goroutine, while a member that
// just installed a snapshot should answer its leader. The cache starts
// empty and incomplete and fills as keys are written and read; a miss
// reads the engine meanwhile, as past the cache's budget
// (docs/adr/0017-snapshot-install-by-ingestion.md).
func (s *Store) Reload() error {
	s.comp.Load().stop()
	s.hashMu.Lock()
	s.hashes = nil
	s.hashMu.Unlock()
	return s.load(false)
}

// Close stops background compaction (it resumes at the next Open).
func (s *Store) Close() error {
	s.closed.Store(true)
	s.comp.Load().stop()
	return nil
}

// Rev is the current (last committed) main revision.
func (s *Store) Rev() int64 { return s.currentRev.Load() }

// CompactRev is the revision of the last scheduled compaction, -1 if none
// (as etcd reports it).
func (s *Store) CompactRev() int64 { return s.compactRev.Load() }

// LogicalSize is the number of bytes the MVCC data takes before storage
// overheads: every version and history record not yet compacted away. It
// falls as soon as a compaction removes old versions (no defragmentation),
// and it is what the backend quota is measured against.
func (s *Store) LogicalSize() int64 { return s.writtenBytes.Load() - s.compactedBytes.Load() }

// KeyCount is the number of live keys at the current revision.
func (s *Store) KeyCount() int64 { return s.keyCount.Load() }

// OnCommit registers fn, called on the apply goroutine once per committed
// write transaction, in revision order, after the revision is readable.
// It must be fast and must not modify the events.
func (s *Store) OnCommit(fn func(rev int64, events []*mvccpb.Event)) {
	if fn == nil {
		s.onCommit.Store(nil)
		return
	}
	s.onCommit.Store(&fn)
}

// RangeOptions select what Range returns.
type RangeOptions struct {
	// Limit caps len(KVs); 0 means no limit. Count still covers the range.
	Limit int64
	// Rev is the revision to read at; <= 0 means the current one.
	Rev int64
	// Count returns only Count, no KVs.
	Count bool
	// KeysOnly leaves values out (saves copying them).
	KeysOnly bool
	// NoTotal stops the scan once Limit keys were found; Count is then
	// len(KVs) (etcd's WithTotalCount=false, used by RangeStream).
	NoTotal bool
}

// RangeResult is what Range returns.
type RangeResult struct {
	KVs []*mvccpb.KeyValue
	// Rev is the current revision of the view (not the revision read at).
	Rev int64
	// Count is the number of keys in the range at the read revision.
	Count int
}

// view is a read view: a reader, an optional overlay of staged writes, the
// revision it reads as "current", and the compaction revision.
type view struct {
	r   storage.Reader
	ov  *overlay
	cur int64
	// compact returns the compaction revision; it is called only after the
	// engine iterator was opened (see the package comment).
	compact func() int64
}

func (v *view) rangeKeys(ctx context.Context, key, end []byte, ro RangeOptions) (*RangeResult, error) {
	rev := ro.Rev
	if rev > v.cur {
		return &RangeResult{Rev: v.cur, Count: -1}, ErrFutureRev
	}
	if rev <= 0 {
		rev = v.cur
	}
	if rev < v.compact() {
		return &RangeResult{Count: -1}, ErrCompacted
	}
	res := &RangeResult{Rev: v.cur}
	// Only the first limit keys are decoded; the rest of the range is
	// counted from key and flag byte alone (or not at all with NoTotal).
	max := int(ro.Limit)
	switch {
	case ro.Count:
		max = 0
	case max <= 0:
		max = -1
	}
	acct := respbudget.FromContext(ctx)
	var chargeErr error
	rest, err := scanRange(ctx, v.r, v.ov, key, end, rev, !ro.KeysOnly && !ro.Count, max, func() error {
		if rev < v.compact() {
			return ErrCompacted
		}
		return nil
	}, func(it rangeItem) bool {
		// Charge the response budget before the KeyValue is kept, so
		// that concurrent big LISTs wait instead of all materialising.
		if acct != nil {
			if chargeErr = acct.Charge(ctx, respbudget.KVCost(len(it.key), len(it.v.value))); chargeErr != nil {
				return false
			}
		}
		res.KVs = append(res.KVs, toKV(it.key, &it.v))
		return !ro.NoTotal || len(res.KVs) != max
	})
	if err == nil {
		err = chargeErr
	}
	if err != nil {
		if errors.Is(err, ErrCompacted) {
			return &RangeResult{Count: -1}, ErrCompacted
		}
		return nil, fmt.Errorf("mvcc: range: %w", err)
	}
	res.Count = len(res.KVs) + rest
	if ro.NoTotal && !ro.Count {
		res.Count = len(res.KVs)
	}
	return res, nil
}

func toKV(key []byte, v *version) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{
		Key:            key,
		CreateRevision: v.create,
		ModRevision:    v.main,
		Version:        v.ver,
		Value:          v.value,
		Lease:          v.lease,
	}
}

// Range reads [key, end) (see rangeBounds for nil and "\x00" ends) at
// ro.Rev. Result.Rev is the current revision.
func (s *Store) Range(ctx context.Context, key, end []byte, ro RangeOptions) (*RangeResult, error) {
	single := len(end) == 0 && ro.Rev >= 0
	if single {
		if res, ok, err := s.rangeCached(ctx, key, ro); ok {
			return res, err
		}
	}
	v := view{r: s.eng, cur: s.currentRev.Load(), compact: s.compactRev.Load}
	res, err := v.rangeKeys(ctx, key, end, ro)
	if err == nil && single && (ro.Rev == 0 || ro.Rev == v.cur) && len(res.KVs) == 1 && !ro.KeysOnly {
		// A point read of the newest version: keep its value in the
		// latest-version cache, so the next reads of this hot key answer
		// from memory.
		s.latest.promote(res.KVs[0])
	}
	return res, err
}

// rangeCached serves a read of one key at the newest revision from the
// latest-version cache; ok is false when the cache cannot answer (it does
// not hold the key, or not its value and the read needs it).
func (s *Store) rangeCached(ctx context.Context, key []byte, ro RangeOptions) (*RangeResult, bool, error) {
	v, valued, cur, live, known := s.latest.read(key, &s.currentRev)
	if !known || (ro.Rev > 0 && ro.Rev != cur) || (live && !valued && !ro.Count && !ro.KeysOnly) {
		return nil, false, nil
	}
	res := &RangeResult{Rev: cur}
	if !live {
		return res, true, nil
	}
	res.Count = 1
	if ro.Count {
		return res, true, nil
	}
	if ro.KeysOnly {
		v.value = nil
	}
	if acct := respbudget.FromContext(ctx); acct != nil {
		if err := acct.Charge(ctx, respbudget.KVCost(len(key), len(v.value))); err != nil {
			return nil, true, fmt.Errorf("mvcc: range: %w", err)
		}
	}
	res.KVs = []*mvccpb.KeyValue{toKV(append([]byte(nil), key...), &v)}
	return res, true, nil
}

// PrevKV returns the version key had at revision rev (its newest version
// <= rev), or nil if it had none or rev is compacted: the prev_kv of an event
// at rev+1, read when a watcher asked for it (as etcd reads it at
// mod_revision-1 when it sends the event, and omits it once compacted).
func (s *Store) PrevKV(ctx context.Context, key []byte, rev int64) (*mvccpb.KeyValue, error) {
	res, err := s.Range(ctx, key, nil, RangeOptions{Rev: rev})
	switch {
	case errors.Is(err, ErrCompacted):
		return nil, nil
	case err != nil:
		return nil, err
	case len(res.KVs) == 0:
		return nil, nil
	}
	return res.KVs[0], nil
}

// ReadTxn is a read view pinned at one revision and one engine snapshot, for
// requests that read several times (read-only txns, compares).
type ReadTxn struct {
	snap    storage.Snapshot
	v       view
	compact int64
}

// Read opens a ReadTxn at the current revision; End must be called.
func (s *Store) Read() *ReadTxn {
	cur := s.currentRev.Load() // before the snapshot: its data is in it
	snap := s.eng.NewSnapshot()
	t := &ReadTxn{snap: snap, compact: s.compactRev.Load()} // after: see package doc
	t.v = view{r: snap, cur: cur, compact: func() int64 { return t.compact }}
	return t
}

// Range reads like Store.Range, at the pinned revision.
func (t *ReadTxn) Range(ctx context.Context, key, end []byte, ro RangeOptions) (*RangeResult, error) {
	return t.v.rangeKeys(ctx, key, end, ro)
}

// Rev is the pinned current revision.
func (t *ReadTxn) Rev() int64 { return t.v.cur }

// CompactRev is the compaction revision when the view was opened.
func (t *ReadTxn) CompactRev() int64 { return t.compact }

// End releases the snapshot.
func (t *ReadTxn) End() { _ = t.snap.Close() }

// KeyCacheStats reports what the cache of keys' newest versions
// (WithLatestCacheBytes) holds: the bytes its entries cost, and whether it
// still holds every live key (then a miss needs no engine read).
func (s *Store) KeyCacheStats() (bytes int64, complete bool) {
	return s.latest.stats()
}
