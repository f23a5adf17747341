package mvcc

import (
	"bytes"
	"context"
	"fmt"
	"math"

	"github.com/google/btree"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/storage"
)

// overlay holds the versions a Writer staged in its batch, which the engine
// cannot show yet, so later operations of the same Writer see them.
type overlay struct {
	t *btree.BTreeG[*ovEntry]
	// probe is the search key of lookups, reused so that a lookup does
	// not allocate (the overlay belongs to the Writer's goroutine).
	probe ovEntry
}

type ovEntry struct {
	key      []byte
	versions []version // ascending revision
}

func newOverlay() *overlay {
	return &overlay{t: btree.NewG(16, func(a, b *ovEntry) bool { return string(a.key) < string(b.key) })}
}

// ovEntry1 is an ovEntry allocated together with room for its first
// version: one allocation per key staged instead of two.
type ovEntry1 struct {
	e     ovEntry
	first [1]version
}

func (o *overlay) get(key []byte) (*ovEntry, bool) {
	o.probe.key = key
	e, ok := o.t.Get(&o.probe)
	o.probe.key = nil
	return e, ok
}

func (o *overlay) add(key []byte, v version) {
	if e, ok := o.get(key); ok {
		e.versions = append(e.versions, v)
		return
	}
	n := &ovEntry1{first: [1]version{v}}
	n.e.key = key
	n.e.versions = n.first[:1:1]
	o.t.ReplaceOrInsert(&n.e)
}

func (e *ovEntry) at(atRev int64) (version, bool) {
	for i := len(e.versions) - 1; i >= 0; i-- {
		if e.versions[i].main <= atRev {
			return e.versions[i], true
		}
	}
	return version{}, false
}

func (o *overlay) latest(u []byte, atRev int64) (version, bool) {
	e, ok := o.get(u)
	if !ok {
		return version{}, false
	}
	return e.at(atRev)
}

// visible returns, in key order, the newest staged version <= atRev of every
// staged key in the range (tombstones included).
func (o *overlay) visible(key, end []byte, atRev int64) []rangeItem {
	if o.t.Len() == 0 {
		return nil
	}
	var out []rangeItem
	add := func(e *ovEntry) bool {
		if !inRange(e.key, key, end) {
			return false // entries start at key, so this one is past the end
		}
		if v, ok := e.at(atRev); ok {
			out = append(out, rangeItem{key: e.key, v: v})
		}
		return true
	}
	if len(end) == 0 {
		if e, ok := o.get(key); ok {
			add(e)
		}
		return out
	}
	o.t.AscendGreaterOrEqual(&ovEntry{key: key}, add)
	return out
}

// Writer stages write transactions into one storage.Batch. It belongs to the
// apply goroutine; only one Writer may be open on a Store at a time, and it
// must be either finished and committed (Finish, then the batch commits, then
// Commit) or dropped (Close). Nothing a Writer does is visible in the Store
// until Commit.
type Writer struct {
	s        *Store
	b        storage.Batch
	ov       *overlay
	rev      int64 // last staged (or committed) revision
	compact  int64 // compaction revision including a staged Compact
	keyCount int64
	written  int64
	commits  []committedTxn
	jobs     []*compactJob
	active   bool
	err      error
	// metaDirty: a TxnWrite wrote since the metadata was last staged.
	// The revision, key count and size are staged once per batch (Finish),
	// not once per txn: each Set is a memtable insert, and a busy batch
	// holds hundreds of txns.
	metaDirty bool
	// kit is one iterator over the k/ space shared by every point lookup
	// of the Writer. Its view is the engine as of its creation, which is
	// what the Writer must see: nothing but the Writer changes live
	// versions, and its own writes are in the overlay. The compactor may
	// remove versions meanwhile, but never a key's newest one unless it is
	// a tombstone, and a tombstone reads like an absent key to a put.
	kit storage.Iterator
	buf []byte // scratch for engine keys and records; the batch copies them
}

type committedTxn struct {
	rev    int64
	events []*mvccpb.Event
}

// NewWriter starts staging writes into b at the store's current revision.
func (s *Store) NewWriter(b storage.Batch) *Writer {
	return &Writer{
		s:        s,
		b:        b,
		ov:       newOverlay(),
		rev:      s.currentRev.Load(),
		compact:  s.compactRev.Load(),
		keyCount: s.keyCount.Load(),
		written:  s.writtenBytes.Load(),
	}
}

// Err is the first engine error the Writer met; a Writer with an error must
// not be committed.
func (w *Writer) Err() error { return w.err }

// Batch is the batch the Writer stages into, for other state (leases) that
// must commit atomically with it.
func (w *Writer) Batch() storage.Batch { return w.b }

// Rev is the revision after everything staged so far.
func (w *Writer) Rev() int64 { return w.rev }

func (w *Writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// Begin starts a logical write transaction; End must be called before the
// next Begin.
func (w *Writer) Begin() *TxnWrite {
	if w.active {
		panic("mvcc: Writer.Begin while a TxnWrite is open")
	}
	w.active = true
	return &TxnWrite{w: w, begin: w.rev}
}

// Compact schedules a compaction at rev. Reads below rev fail once the Writer
// is committed; the returned channel closes when the old versions were
// physically removed (never, if the Writer is dropped).
func (w *Writer) Compact(rev int64) (<-chan struct{}, error) {
	if rev <= w.compact {
		return nil, ErrCompacted
	}
	if rev > w.rev {
		return nil, ErrFutureRev
	}
	if err := w.b.Set(storage.KeyScheduledCompact, putInt64(rev)); err != nil {
		w.fail(fmt.Errorf("mvcc: stage compaction: %w", err))
		return nil, w.err
	}
	j := newCompactJob(rev, w.compact)
	w.compact = rev
	w.jobs = append(w.jobs, j)
	return j.done, nil
}

// Finish stages the store's metadata for everything written so far and
// releases the Writer's engine resources. Call it after the last TxnWrite
// and before committing the batch; it returns the Writer's first error, and
// a Writer with an error must not be committed.
func (w *Writer) Finish() error {
	w.Close()
	if w.active {
		w.fail(fmt.Errorf("mvcc: Finish while a TxnWrite is open"))
	}
	if w.err != nil || !w.metaDirty {
		return w.err
	}
	w.metaDirty = false
	if err := w.b.Set(storage.KeyCurrentRevision, putInt64(w.rev)); err != nil {
		w.fail(fmt.Errorf("mvcc: stage revision: %w", err))
	}
	if err := w.b.Set(keyKeyCount, putInt64(w.keyCount)); err != nil {
		w.fail(fmt.Errorf("mvcc: stage key count: %w", err))
	}
	if err := w.b.Set(keyWrittenBytes, putInt64(w.written)); err != nil {
		w.fail(fmt.Errorf("mvcc: stage written bytes: %w", err))
	}
	return w.err
}

// Close releases the Writer's engine resources without staging anything;
// a dropped Writer must be closed. Closing twice is harmless.
func (w *Writer) Close() {
	if w.kit != nil {
		_ = w.kit.Close()
		w.kit = nil
	}
}

// latest returns the newest version of user key u (overlay first), a
// tombstone included, or ok=false when the key has no version. It is
// latestVersion at the newest revision, on the Writer's shared iterator.
// The version's value is set only if needValue (or the cache held it
// anyway): the cache holds metadata, and the value of a key not read hot is
// on the engine only.
func (w *Writer) latest(u []byte, needValue bool) (v version, ok, valued bool, err error) {
	if v, ok := w.ov.latest(u, math.MaxInt64); ok {
		return v, true, true, nil
	}
	if v, valued, live, known := w.s.latest.get(u); known && (!live || valued || !needValue) {
		return v, live, valued, nil
	}
	v, ok, err = w.engineLatest(u, needValue)
	if err == nil {
		w.s.latest.fill(u, v, ok)
	}
	return v, ok, needValue, err
}

// engineLatest is latest read from the engine, with the value if withValue.
func (w *Writer) engineLatest(u []byte, withValue bool) (version, bool, error) {
	if w.kit == nil {
		it, err := w.s.eng.NewIter(storage.IterOptions{LowerBound: prefixK, UpperBound: prefixKEnd})
		if err != nil {
			return version{}, false, fmt.Errorf("mvcc: open iterator: %w", err)
		}
		w.kit = it
	}
	g := appendGroup(w.buf[:0], u)
	w.buf = g
	if !seekPrefix(w.kit, g) {
		return version{}, false, w.kit.Error()
	}
	k := w.kit.Key()
	if len(k) != len(g)+revSuffixLen || !bytes.HasPrefix(k, g) {
		return version{}, false, nil
	}
	_, main, sub, err := splitVersionKey(k)
	if err != nil {
		return version{}, false, err
	}
	v, err := decodeRecord(w.kit.Value(), main, sub, withValue)
	return v, err == nil, err
}

// Commit publishes what the Writer staged. Call it only after Finish and
// after the batch committed successfully.
func (w *Writer) Commit() {
	if w.metaDirty {
		panic("mvcc: Writer.Commit without Finish: the batch lacks the store's metadata")
	}
	s := w.s
	s.keyCount.Store(w.keyCount)
	s.writtenBytes.Store(w.written)
	s.latest.commit(w.ov, func() { s.currentRev.Store(w.rev) })
	if len(w.jobs) > 0 {
		s.compactRev.Store(w.compact)
		comp := s.comp.Load()
		for _, j := range w.jobs {
			comp.enqueue(j)
		}
	}
	if fn := s.onCommit.Load(); fn != nil {
		for _, c := range w.commits {
			(*fn)(c.rev, c.events)
		}
	}
	w.commits, w.jobs = nil, nil
}

// TxnWrite is one logical write transaction: all its writes share one main
// revision. It sees its own writes and those of earlier TxnWrites of the same
// Writer.
type TxnWrite struct {
	w       *Writer
	begin   int64
	changes int64
	events  []*mvccpb.Event
	ended   bool
}

// Rev is the revision of the txn: begin+1 once it wrote, begin before.
func (t *TxnWrite) Rev() int64 {
	if t.changes > 0 {
		return t.begin + 1
	}
	return t.begin
}

// CompactRev is the compaction revision reads in this txn are checked against.
func (t *TxnWrite) CompactRev() int64 { return t.w.compact }

func (t *TxnWrite) view() *view {
	return &view{r: t.w.s.eng, ov: t.w.ov, cur: t.Rev(), compact: func() int64 { return t.w.compact }}
}

// Range reads like Store.Range, seeing the writes staged so far.
func (t *TxnWrite) Range(ctx context.Context, key, end []byte, ro RangeOptions) (*RangeResult, error) {
	cur := t.Rev()
	if len(end) == 0 && (ro.Rev <= 0 || ro.Rev == cur) && cur >= t.w.compact {
		// A single key at the newest revision (a txn's compares, a put's
		// prev_kv): a point lookup on the Writer's shared iterator.
		v, ok, _, err := t.w.latest(key, !ro.Count && !ro.KeysOnly)
		if err != nil {
			t.w.fail(fmt.Errorf("mvcc: range: %w", err))
			return nil, fmt.Errorf("mvcc: range: %w", err)
		}
		res := &RangeResult{Rev: cur}
		if !ok || v.tomb {
			return res, nil
		}
		res.Count = 1
		if !ro.Count {
			if ro.KeysOnly {
				v.value = nil
			}
			res.KVs = []*mvccpb.KeyValue{toKV(append([]byte(nil), key...), &v)}
		}
		return res, nil
	}
	return t.view().rangeKeys(ctx, key, end, ro)
}

func (t *TxnWrite) stage(key []byte, v version) {
	w := t.w
	// One scratch buffer holds the version key, its record, the history
	// key and its record in turn; the batch copies what it is given.
	buf := appendGroup(w.buf[:0], key)
	glen := len(buf)
	buf = appendRev(buf, v.main, v.sub)
	vk := buf
	buf = appendRecord(buf, &v)
	rec := buf[len(vk):]
	if err := w.b.Set(vk, rec); err != nil {
		w.fail(fmt.Errorf("mvcc: stage version: %w", err))
	}
	vkLen, recLen := len(vk), len(rec)
	buf = appendHistoryKey(buf[:0], v.main, v.sub)
	hk := buf
	buf = appendHistory(buf, key, v.tomb)
	if err := w.b.Set(hk, buf[len(hk):]); err != nil {
		w.fail(fmt.Errorf("mvcc: stage history: %w", err))
	}
	w.buf = buf
	w.written += versionSize(vkLen, recLen, len(hk), glen)
	w.ov.add(key, v)
	t.changes++
}

// Put writes key=value with lease and returns the previous live version, or
// nil. Key and value are copied. The previous version's Value is set only
// when it was at hand (staged by this Writer, or cached because the key is
// read hot): read it with Range before the Put when it is needed (a put's
// prev_kv). Its event carries PrevKv only then too; the watch hub reads the
// missing ones for the watchers that asked (Store.PrevKV).
func (t *TxnWrite) Put(key, value []byte, lease int64) *mvccpb.KeyValue {
	// One allocation for both copies.
	kv := make([]byte, len(key)+len(value))
	copy(kv, key)
	copy(kv[len(key):], value)
	key, value = kv[:len(key):len(key)], kv[len(key):]
	rev := t.begin + 1
	prev, ok, valued, err := t.w.latest(key, false)
	if err != nil {
		t.w.fail(fmt.Errorf("mvcc: put: %w", err))
	}
	v := version{main: rev, sub: t.changes, create: rev, ver: 1, lease: lease, value: value}
	var prevKV, evPrev *mvccpb.KeyValue
	if ok && !prev.tomb {
		v.create, v.ver = prev.create, prev.ver+1
		prevKV = toKV(key, &prev)
		if valued {
			evPrev = prevKV
		}
	} else {
		t.w.keyCount++
	}
	t.stage(key, v)
	// The event and its KeyValue in one allocation.
	ek := &eventKV{kv: mvccpb.KeyValue{Key: key, CreateRevision: v.create, ModRevision: v.main, Version: v.ver, Value: v.value, Lease: v.lease}}
	ek.ev = mvccpb.Event{Type: mvccpb.Event_PUT, Kv: &ek.kv, PrevKv: evPrev}
	t.events = append(t.events, &ek.ev)
	return prevKV
}

type eventKV struct {
	ev mvccpb.Event
	kv mvccpb.KeyValue
}

// DeleteRange deletes every live key in the range (see Store.Range for the
// meaning of end) and returns the deleted versions. Deleting nothing writes
// nothing.
func (t *TxnWrite) DeleteRange(key, end []byte) []*mvccpb.KeyValue {
	var items []rangeItem
	// Not cancellable: the txn has begun, a half-done delete must not be
	// committed.
	_, err := scanRange(context.Background(), t.w.s.eng, t.w.ov, key, end, t.Rev(), true, -1, nil, func(it rangeItem) bool {
		items = append(items, it)
		return true
	})
	if err != nil {
		t.w.fail(fmt.Errorf("mvcc: delete range: %w", err))
		return nil
	}
	if len(items) == 0 {
		return nil
	}
	rev := t.begin + 1
	deleted := make([]*mvccpb.KeyValue, len(items))
	for i := range items {
		it := &items[i]
		prev := toKV(it.key, &it.v)
		deleted[i] = prev
		t.stage(it.key, version{main: rev, sub: t.changes, tomb: true})
		t.w.keyCount--
		t.events = append(t.events, &mvccpb.Event{
			Type:   mvccpb.Event_DELETE,
			Kv:     &mvccpb.KeyValue{Key: it.key, ModRevision: rev},
			PrevKv: prev,
		})
	}
	return deleted
}

// End finishes the txn and returns its events in operation order.
func (t *TxnWrite) End() []*mvccpb.Event {
	if t.ended {
		return t.events
	}
	t.ended = true
	w := t.w
	w.active = false
	if t.changes == 0 {
		return nil
	}
	w.rev = t.begin + 1
	w.metaDirty = true
	w.commits = append(w.commits, committedTxn{rev: w.rev, events: t.events})
	return t.events
}
