package mvcc

import (
	"context"
	"fmt"

	"github.com/google/btree"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/storage"
)

// overlay holds the versions a Writer staged in its batch, which the engine
// cannot show yet, so later operations of the same Writer see them.
type overlay struct {
	t *btree.BTreeG[*ovEntry]
}

type ovEntry struct {
	key      []byte
	versions []version // ascending revision
}

func newOverlay() *overlay {
	return &overlay{t: btree.NewG(16, func(a, b *ovEntry) bool { return string(a.key) < string(b.key) })}
}

func (o *overlay) add(key []byte, v version) {
	if e, ok := o.t.Get(&ovEntry{key: key}); ok {
		e.versions = append(e.versions, v)
		return
	}
	o.t.ReplaceOrInsert(&ovEntry{key: key, versions: []version{v}})
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
	e, ok := o.t.Get(&ovEntry{key: u})
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
		if e, ok := o.t.Get(&ovEntry{key: key}); ok {
			add(e)
		}
		return out
	}
	o.t.AscendGreaterOrEqual(&ovEntry{key: key}, add)
	return out
}

// Writer stages write transactions into one storage.Batch. It belongs to the
// apply goroutine; only one Writer may be open on a Store at a time, and it
// must be either committed (Commit, after the batch committed) or dropped.
// Nothing a Writer does is visible in the Store until Commit.
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

// Commit publishes what the Writer staged. Call it only after the batch
// committed successfully.
func (w *Writer) Commit() {
	s := w.s
	s.keyCount.Store(w.keyCount)
	s.writtenBytes.Store(w.written)
	s.currentRev.Store(w.rev)
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
	return t.view().rangeKeys(ctx, key, end, ro)
}

func (t *TxnWrite) stage(key []byte, v version) {
	w := t.w
	group := keyGroup(key)
	vk, rec := versionKey(group, v.main, v.sub), encodeRecord(&v)
	if err := w.b.Set(vk, rec); err != nil {
		w.fail(fmt.Errorf("mvcc: stage version: %w", err))
	}
	hk := historyKey(v.main, v.sub)
	if err := w.b.Set(hk, encodeHistory(key, v.tomb)); err != nil {
		w.fail(fmt.Errorf("mvcc: stage history: %w", err))
	}
	w.written += versionSize(len(vk), len(rec), len(hk), len(group))
	w.ov.add(key, v)
	t.changes++
}

// Put writes key=value with lease and returns the previous live version, or
// nil. Key and value are copied.
func (t *TxnWrite) Put(key, value []byte, lease int64) *mvccpb.KeyValue {
	key = append([]byte(nil), key...)
	rev := t.begin + 1
	prev, ok, err := latestVersion(t.w.s.eng, t.w.ov, key, rev)
	if err != nil {
		t.w.fail(fmt.Errorf("mvcc: put: %w", err))
	}
	v := version{main: rev, sub: t.changes, create: rev, ver: 1, lease: lease, value: append([]byte{}, value...)}
	var prevKV *mvccpb.KeyValue
	if ok && !prev.tomb {
		v.create, v.ver = prev.create, prev.ver+1
		prevKV = toKV(key, &prev)
	} else {
		t.w.keyCount++
	}
	t.stage(key, v)
	t.events = append(t.events, &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: toKV(key, &v), PrevKv: prevKV})
	return prevKV
}

// DeleteRange deletes every live key in the range (see Store.Range for the
// meaning of end) and returns the deleted versions. Deleting nothing writes
// nothing.
func (t *TxnWrite) DeleteRange(key, end []byte) []*mvccpb.KeyValue {
	var items []rangeItem
	err := scanRange(t.w.s.eng, t.w.ov, key, end, t.Rev(), true, nil, func(it rangeItem) bool {
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
	if err := w.b.Set(storage.KeyCurrentRevision, putInt64(w.rev)); err != nil {
		w.fail(fmt.Errorf("mvcc: stage revision: %w", err))
	}
	if err := w.b.Set(keyKeyCount, putInt64(w.keyCount)); err != nil {
		w.fail(fmt.Errorf("mvcc: stage key count: %w", err))
	}
	if err := w.b.Set(keyWrittenBytes, putInt64(w.written)); err != nil {
		w.fail(fmt.Errorf("mvcc: stage written bytes: %w", err))
	}
	w.commits = append(w.commits, committedTxn{rev: w.rev, events: t.events})
	return t.events
}
