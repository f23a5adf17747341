package watch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"
)

// History is what the hub needs of the MVCC store.
type History interface {
	// Rev is the last committed revision.
	Rev() int64
	// CompactRev is the compaction revision (-1 or 0 if none); history below
	// it is gone, reading at exactly it is allowed.
	CompactRev() int64
	// Events returns, in revision order, the events with
	// fromRev <= mod revision <= toRev on the keys in [key, end) (end empty:
	// key only; end "\x00": every key >= key), with PrevKv where that version
	// still exists. At most limit events (0: no limit); next is the first
	// revision not returned (toRev+1 when complete). It fails when fromRev is
	// below the compaction revision.
	Events(ctx context.Context, fromRev, toRev int64, key, end []byte, limit int) (evs []*mvccpb.Event, next int64, err error)
	// PrevKV returns key's newest version at revision rev, nil if it had
	// none or rev is below the compaction revision. The store's commit
	// hook passes put events without their PrevKv when it did not have the
	// previous value at hand; the hub reads it here, only for watchers that
	// asked for prev_kv.
	PrevKV(ctx context.Context, key []byte, rev int64) (*mvccpb.KeyValue, error)
}

// Options tune a Hub; zero fields take the defaults.
type Options struct {
	// MaxStreamBytes bounds the event bytes queued on one stream; beyond it
	// the stream's watchers fall back to catch-up from history. Default 16 MiB.
	MaxStreamBytes int
	// MaxStreamResponses bounds the responses queued on one stream. Default 1024.
	MaxStreamResponses int
	// MaxPendingEvents bounds the events Notify buffers for the dispatcher; on
	// overflow they are dropped and every synced watcher catches up from
	// history instead. Default 65536.
	MaxPendingEvents int
	// CatchUpEvents is how many events one catch-up round reads. Default 1000.
	CatchUpEvents int
	// CatchUpWatchers is how many watchers one catch-up round serves. Default 4096.
	CatchUpWatchers int
	// MaxResponseBytes cuts catch-up responses at revision boundaries once
	// they hold this many bytes. Default 1 MiB.
	MaxResponseBytes int
	// RetryInterval is the pause after a failed history read. Default 100ms.
	RetryInterval time.Duration
}

func (o *Options) fill() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxStreamBytes, 16<<20)
	def(&o.MaxStreamResponses, 1024)
	def(&o.MaxPendingEvents, 1<<16)
	def(&o.CatchUpEvents, 1000)
	def(&o.CatchUpWatchers, 4096)
	def(&o.MaxResponseBytes, 1<<20)
	if o.RetryInterval <= 0 {
		o.RetryInterval = 100 * time.Millisecond
	}
}

var (
	// ErrDuplicateID: the client chose a watch ID already in use on the stream
	// (etcd's message, which clients see as cancel_reason).
	ErrDuplicateID = errors.New("mvcc: duplicate watch ID provided on the WatchStream")
	// ErrEmptyRange: key >= range_end.
	ErrEmptyRange = errors.New("mvcc: watcher range is empty")
	// ErrClosed: the stream or hub was closed.
	ErrClosed = errors.New("watch: stream closed")
)

// AutoWatchID asks the stream to choose the watch ID (clientv3.AutoWatchID).
const AutoWatchID int64 = 0

// InvalidWatchID is the watch ID of failed creations and of progress
// responses on behalf of every watcher of a stream (clientv3.InvalidWatchID).
const InvalidWatchID int64 = -1

type pendingRev struct {
	rev int64
	evs []*mvccpb.Event
}

// Stats is a snapshot of the hub's size.
type Stats struct {
	Synced, Unsynced, Streams int
	// Rev is the last revision handed to the synced watchers.
	Rev int64
}

// Hub serves every watcher of one member.
type Hub struct {
	hist History
	lg   *zap.Logger
	opts Options

	pendMu     sync.Mutex // guards pending, spare, pendingN, overflowTo, notified, overflows, idleRev
	pending    []pendingRev
	spare      []pendingRev
	pendingN   int
	overflowTo int64
	notified   int64
	// overflows counts the times Notify dropped queued events because the
	// dispatcher fell behind; it only grows.
	overflows int64
	// idleRev is the last revision Notify passed over because no watcher
	// existed: it is not queued, and the dispatcher only advances its
	// revision to it.
	idleRev int64
	// watchers counts the live watchers (synced or unsynced). Watch
	// increments it before reading the store's revision, and Notify reads it
	// after the store published the revision it notifies, so a watcher that
	// Notify did not see starts after that revision (see Notify).
	watchers atomic.Int64

	notifyc chan struct{}
	kickc   chan struct{}
	// ctx ends history reads when the hub closes.
	ctx    context.Context
	cancel context.CancelFunc
	stopc  chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex // guards everything below, and watcher/stream state
	rev      int64
	synced   *group
	unsynced *group
	streams  map[*Stream]struct{}
	// waiting are streams with a progress request not yet answered because
	// some of their watchers were not synced.
	waiting map[*Stream]struct{}
	closed  bool
	touched []*watcher
	plain   []*mvccpb.Event
}

// NewHub starts a hub at the store's current revision. Wire the store's
// commit hook to Notify before the first write after this call.
func NewHub(h History, lg *zap.Logger, opts Options) *Hub {
	if lg == nil {
		lg = zap.NewNop()
	}
	opts.fill()
	rev := h.Rev()
	hub := &Hub{
		hist:     h,
		lg:       lg,
		opts:     opts,
		notified: rev,
		notifyc:  make(chan struct{}, 1),
		kickc:    make(chan struct{}, 1),
		stopc:    make(chan struct{}),
		rev:      rev,
		synced:   newGroup(),
		unsynced: newGroup(),
		streams:  make(map[*Stream]struct{}),
		waiting:  make(map[*Stream]struct{}),
	}
	hub.ctx, hub.cancel = context.WithCancel(context.Background())
	hub.wg.Add(2)
	go hub.dispatchLoop()
	go hub.catchUpLoop()
	return hub
}

// Notify hands the events of committed revision rev to the watchers. It only
// queues them and never blocks on watchers; evs must not be modified later.
// With no watcher at all it costs a lock and no wake-up of the dispatcher:
// a watcher created later starts after the store's revision at its creation,
// which is at least rev, since the store publishes rev before it calls
// Notify and Watch counts the watcher before reading the revision.
func (h *Hub) Notify(rev int64, evs []*mvccpb.Event) {
	h.pendMu.Lock()
	if rev <= h.notified {
		h.pendMu.Unlock()
		return
	}
	h.notified = rev
	if h.overflowTo == 0 && h.watchers.Load() == 0 {
		h.idleRev = rev
		h.pendMu.Unlock()
		// A watcher counted since the check above may already have asked
		// the dispatcher to catch up with the store's revision before
		// idleRev was set: wake it again so that it sees idleRev.
		if h.watchers.Load() != 0 {
			h.wakeDispatcher()
		}
		return
	}
	if h.overflowTo > 0 || h.pendingN+len(evs) > h.opts.MaxPendingEvents {
		// The dispatcher is far behind: forget the events, the store has
		// them; synced watchers will read them back from history.
		if h.overflowTo == 0 {
			h.overflows++
		}
		clear(h.pending)
		h.pending = h.pending[:0]
		h.pendingN = 0
		h.overflowTo = rev
	} else {
		h.pending = append(h.pending, pendingRev{rev: rev, evs: evs})
		h.pendingN += len(evs)
	}
	h.pendMu.Unlock()
	h.wakeDispatcher()
}

func (h *Hub) wakeDispatcher() {
	select {
	case h.notifyc <- struct{}{}:
	default:
	}
}

// Resync makes every synced watcher catch up from history from its next
// revision to the store's current revision. Call it after the store's state
// was replaced (a Raft snapshot was installed), when the revisions in between
// were never passed to Notify.
func (h *Hub) Resync() {
	rev := h.hist.Rev()
	h.pendMu.Lock()
	clear(h.pending)
	h.pending = h.pending[:0]
	h.pendingN = 0
	h.overflowTo = max(h.overflowTo, rev, h.notified)
	h.notified = max(h.notified, rev)
	h.pendMu.Unlock()
	h.wakeDispatcher()
}

// Overflows is how many times the dispatcher fell so far behind that queued
// events were dropped and synced watchers had to catch up from history.
func (h *Hub) Overflows() int64 {
	h.pendMu.Lock()
	defer h.pendMu.Unlock()
	return h.overflows
}

// Close stops the hub and closes every stream.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	streams := make([]*Stream, 0, len(h.streams))
	for s := range h.streams {
		streams = append(streams, s)
	}
	h.mu.Unlock()
	close(h.stopc)
	h.cancel()
	h.wg.Wait()
	for _, s := range streams {
		s.Close()
	}
}

// Rev is the last revision delivered to synced watchers (or passed over
// while there were none).
func (h *Hub) Rev() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.revLocked()
}

// absorbIdleLocked advances the hub's revision over the revisions Notify
// passed over for lack of watchers. That is safe at any time: Notify saw no
// watcher, so every live watcher was counted after it and starts after
// them (or, unsynced, reads them from history up to h.rev); revisions still
// queued before them had no watcher left to deliver to. Watch calls it so
// that a new watcher is ready at once and catch-up reads up to the store's
// revision.
func (h *Hub) absorbIdleLocked() {
	h.pendMu.Lock()
	idle := h.idleRev
	h.pendMu.Unlock()
	h.rev = max(h.rev, idle)
}

// revLocked is h.rev, or the last revision Notify passed over for lack of
// watchers if that is newer and the dispatcher has not caught up with it.
func (h *Hub) revLocked() int64 {
	h.pendMu.Lock()
	defer h.pendMu.Unlock()
	return max(h.rev, h.idleRev)
}

// WatcherCount is the number of live watchers on every stream.
func (h *Hub) WatcherCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.synced.size() + h.unsynced.size()
}

// Stats reports the size of the hub.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Stats{Synced: h.synced.size(), Unsynced: h.unsynced.size(), Streams: len(h.streams), Rev: h.revLocked()}
}

func (h *Hub) kick() {
	select {
	case h.kickc <- struct{}{}:
	default:
	}
}

func (h *Hub) dispatchLoop() {
	defer h.wg.Done()
	for {
		select {
		case <-h.notifyc:
		case <-h.stopc:
			return
		}
		h.pendMu.Lock()
		batch, overflow, idle := h.pending, h.overflowTo, h.idleRev
		h.pending, h.spare = h.spare[:0], nil
		h.pendingN, h.overflowTo = 0, 0
		h.pendMu.Unlock()

		h.mu.Lock()
		if overflow > 0 {
			h.overflowLocked(overflow)
		}
		for i := range batch {
			h.fanOutLocked(batch[i].rev, batch[i].evs)
		}
		// Revisions Notify passed over had no watcher to deliver to, and
		// every watcher created since starts after them.
		h.rev = max(h.rev, idle)
		h.answerWaitingLocked()
		h.mu.Unlock()

		clear(batch)
		h.pendMu.Lock()
		if h.spare == nil {
			h.spare = batch[:0]
		}
		h.pendMu.Unlock()
	}
}

// overflowLocked handles revisions dropped by Notify, up to rev: every synced
// watcher that needed them goes to catch-up.
func (h *Hub) overflowLocked(rev int64) {
	for w := range h.synced.all {
		if w.minRev <= rev {
			h.toUnsyncedLocked(w, max(w.minRev, h.rev+1))
		}
	}
	h.lg.Warn("watch dispatcher fell behind; synced watchers catch up from history",
		zap.Int64("from-revision", h.rev+1), zap.Int64("to-revision", rev))
	h.rev = rev
}

// fanOutLocked delivers the events of one revision to the synced watchers.
func (h *Hub) fanOutLocked(rev int64, evs []*mvccpb.Event) {
	if rev <= h.rev {
		return
	}
	if h.synced.size() > 0 && len(evs) > 0 {
		touched := h.touched[:0]
		plain := h.plain[:0]
		for range evs {
			plain = append(plain, nil)
		}
		for i := range evs {
			ev := evs[i]
			h.synced.stab(ev.Kv.Key, func(w *watcher) {
				if rev < w.minRev || w.filtered(ev) {
					return
				}
				if len(w.scratch) == 0 {
					touched = append(touched, w)
				}
				w.scratch = append(w.scratch, eventFor(w, ev, &plain[i]))
			})
		}
		for _, w := range touched {
			r := &Response{WatchID: w.id, Events: w.scratch, Revision: rev, Fragment: w.fragment, prevKV: w.prevKV}
			w.scratch = nil
			if w.s.enqueue(r, false) {
				w.minRev = rev + 1
				w.sentSinceTick = true
			} else {
				h.toUnsyncedLocked(w, rev)
			}
		}
		clear(touched)
		clear(plain)
		h.touched, h.plain = touched[:0], plain[:0]
	}
	h.rev = rev
}

// eventFor returns ev as watcher w must see it: without PrevKv unless asked
// for, and never with PrevKv on a create (etcd reads the previous version at
// mod_revision-1, which a create does not have). The stripped copy is made
// once per event and shared.
func eventFor(w *watcher, ev *mvccpb.Event, plain **mvccpb.Event) *mvccpb.Event {
	if ev.PrevKv == nil || (w.prevKV && !isCreate(ev)) {
		return ev
	}
	if *plain == nil {
		*plain = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
	}
	return *plain
}

// fixPrev makes the PrevKv of r's events what etcd sends, at send time:
// etcd reads prev_kv at mod_revision-1 when it sends an event, and omits it
// once that revision is compacted. So PrevKv is removed from events whose
// previous revision is now compacted, and, for a watcher that asked for it,
// read from the store for put events that were notified without it (the
// store passes it only when it had the previous value at hand). A failed
// read omits it, as in etcd.
func (h *Hub) fixPrev(ctx context.Context, r *Response) *Response {
	compact := h.hist.CompactRev()
	var out []*mvccpb.Event
	set := func(i int, ev *mvccpb.Event) {
		if out == nil {
			out = make([]*mvccpb.Event, len(r.Events))
			copy(out, r.Events)
		}
		out[i] = ev
	}
	for i, ev := range r.Events {
		prevRev := ev.Kv.ModRevision - 1
		switch {
		case ev.PrevKv != nil && prevRev < compact:
			set(i, &mvccpb.Event{Type: ev.Type, Kv: ev.Kv})
		case ev.PrevKv == nil && r.prevKV && ev.Type == mvccpb.Event_PUT && ev.Kv.Version > 1 && prevRev >= compact:
			// Version > 1: the key had a live version before this put.
			prev, err := h.hist.PrevKV(ctx, ev.Kv.Key, prevRev)
			if err != nil {
				h.lg.Warn("watch failed to read prev_kv; sending the event without it",
					zap.ByteString("key", ev.Kv.Key), zap.Int64("revision", prevRev), zap.Error(err))
				continue
			}
			if prev != nil {
				set(i, &mvccpb.Event{Type: ev.Type, Kv: ev.Kv, PrevKv: prev})
			}
		}
	}
	if out != nil {
		r.Events = out
	}
	return r
}

func isCreate(ev *mvccpb.Event) bool {
	return ev.Type == mvccpb.Event_PUT && ev.Kv.CreateRevision == ev.Kv.ModRevision
}

func (h *Hub) toUnsyncedLocked(w *watcher, from int64) {
	h.synced.delete(w)
	w.state = stateUnsynced
	w.minRev = from
	h.unsynced.add(w)
	w.s.unsyncedN.Add(1)
	h.kick()
}

func (h *Hub) toSyncedLocked(w *watcher) {
	h.unsynced.delete(w)
	w.s.unsyncedN.Add(-1)
	w.state = stateSynced
	h.synced.add(w)
}

// removeLocked takes w out of whichever group holds it.
func (h *Hub) removeLocked(w *watcher) {
	switch w.state {
	case stateSynced:
		h.synced.delete(w)
		h.watchers.Add(-1)
	case stateUnsynced:
		h.unsynced.delete(w)
		w.s.unsyncedN.Add(-1)
		h.watchers.Add(-1)
	}
	w.state = stateDead
	w.scratch = nil
}

func (h *Hub) cancelCompactedLocked(w *watcher, compact int64) {
	h.removeLocked(w)
	w.s.enqueue(&Response{WatchID: w.id, CompactRevision: compact, Canceled: true}, true)
}

// readyLocked: w has been sent every event up to h.rev, and its start
// revision is not in the future (etcd sends no early progress, #20221).
func (h *Hub) readyLocked(w *watcher) bool {
	return w.state == stateSynced && w.minRev <= h.rev+1 && h.rev >= w.startRev
}

func (h *Hub) answerWaitingLocked() {
	for s := range h.waiting {
		if s.progressAllLocked() {
			delete(h.waiting, s)
		}
	}
}

func (h *Hub) catchUpLoop() {
	defer h.wg.Done()
	ctx := h.ctx
	var retry *time.Timer
	for {
		more, err := h.catchUpRound(ctx)
		var retryc <-chan time.Time
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			h.lg.Warn("watch catch-up failed to read history; retrying", zap.Error(err))
			if retry == nil {
				retry = time.NewTimer(h.opts.RetryInterval)
				defer retry.Stop()
			} else {
				retry.Reset(h.opts.RetryInterval)
			}
			retryc = retry.C
		case more:
			select {
			case <-h.stopc:
				return
			default:
			}
			continue
		}
		select {
		case <-h.kickc:
		case <-retryc:
		case <-h.stopc:
			return
		}
	}
}

// catchUpRound replays history to a batch of unsynced watchers whose streams
// have room. It reports whether another round may have work.
func (h *Hub) catchUpRound(ctx context.Context) (bool, error) {
	h.mu.Lock()
	if h.unsynced.size() == 0 {
		h.mu.Unlock()
		return false, nil
	}
	toRev := h.rev
	compact := h.hist.CompactRev()
	var chosen []*watcher
	minRev := int64(math.MaxInt64)
	room := make(map[*Stream]bool)
	for w := range h.unsynced.all {
		switch {
		case w.minRev < compact:
			h.cancelCompactedLocked(w, compact)
			continue
		case w.minRev > toRev:
			h.toSyncedLocked(w)
			continue
		case len(chosen) >= h.opts.CatchUpWatchers:
			continue
		}
		ok, seen := room[w.s]
		if !seen {
			ok = !w.s.full()
			room[w.s] = ok
		}
		if ok {
			w.chosen = true
			chosen = append(chosen, w)
			minRev = min(minRev, w.minRev)
		}
	}
	h.answerWaitingLocked()
	h.mu.Unlock()
	if len(chosen) == 0 {
		return false, nil
	}

	key, end := []byte{0}, []byte{0}
	if first := chosen[0]; func() bool {
		for _, w := range chosen[1:] {
			if w.rangeID() != first.rangeID() {
				return false
			}
		}
		return true
	}() {
		key, end = first.key, first.end
		if first.fromKey {
			end = []byte{0}
		}
	}
	evs, next, err := h.readHistory(ctx, minRev, toRev, key, end)

	h.mu.Lock()
	defer h.mu.Unlock()
	defer func() {
		for _, w := range chosen {
			w.chosen = false
		}
	}()
	if err != nil {
		if minRev < h.hist.CompactRev() {
			return true, nil // the next round cancels the compacted watchers
		}
		return false, fmt.Errorf("read history [%d, %d]: %w", minRev, toRev, err)
	}
	// Cancelled watchers left the unsynced group, so stabbing it only finds
	// live ones.
	var touched []*watcher
	for i := range evs {
		ev := evs[i]
		rev := ev.Kv.ModRevision
		var plain *mvccpb.Event
		h.unsynced.stab(ev.Kv.Key, func(w *watcher) {
			if !w.chosen || rev < w.minRev || w.filtered(ev) {
				return
			}
			if len(w.scratch) == 0 {
				touched = append(touched, w)
			}
			w.scratch = append(w.scratch, eventFor(w, ev, &plain))
		})
	}
	for _, w := range touched {
		h.sendBatchLocked(w, w.scratch, toRev)
		w.scratch = nil
	}
	for _, w := range chosen {
		if w.state != stateUnsynced {
			continue
		}
		w.minRev = max(w.minRev, next)
		if w.minRev > h.rev {
			h.toSyncedLocked(w)
		}
	}
	h.answerWaitingLocked()
	return true, nil
}

// sendBatchLocked queues the catch-up events of w, cut at revision boundaries
// into responses of about MaxResponseBytes (a revision is never split).
func (h *Hub) sendBatchLocked(w *watcher, evs []*mvccpb.Event, rev int64) {
	for len(evs) > 0 {
		n, size := 0, 0
		for n < len(evs) {
			r := evs[n].Kv.ModRevision
			j, sz := n, 0
			for j < len(evs) && evs[j].Kv.ModRevision == r {
				sz += eventSize(evs[j])
				j++
			}
			if n > 0 && size+sz > h.opts.MaxResponseBytes {
				break
			}
			n, size = j, size+sz
		}
		w.s.enqueue(&Response{WatchID: w.id, Events: evs[:n:n], Revision: rev, Fragment: w.fragment}, true)
		w.sentSinceTick = true
		evs = evs[n:]
	}
}

// readHistory reads [from, to] and returns only whole revisions, with next
// the first revision not covered.
func (h *Hub) readHistory(ctx context.Context, from, to int64, key, end []byte) ([]*mvccpb.Event, int64, error) {
	evs, next, err := h.hist.Events(ctx, from, to, key, end, h.opts.CatchUpEvents)
	if err != nil {
		return nil, 0, err
	}
	if next <= 0 || next > to {
		next = to + 1
	}
	if next <= from {
		// One revision holds more than the limit: read it whole.
		evs, _, err = h.hist.Events(ctx, from, from, key, end, 0)
		if err != nil {
			return nil, 0, err
		}
		next = from + 1
	}
	n := len(evs)
	for n > 0 && evs[n-1].Kv.ModRevision >= next {
		n--
	}
	return evs[:n], next, nil
}
