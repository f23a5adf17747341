package watch

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Response is one message for the client, in the order it must be sent.
type Response struct {
	WatchID int64
	// Events of one or more whole revisions, in revision order.
	Events []*mvccpb.Event
	// Revision is the header revision: the store revision the response
	// reflects (0 on a compaction cancel, as etcd sends it).
	Revision        int64
	CompactRevision int64
	Created         bool
	Canceled        bool
	CancelReason    string
	// Fragment: the watcher asked for responses over the request size limit
	// to be split (the transport does the splitting).
	Fragment bool

	size int
	ctrl bool
	// prevKV: the watcher asked for prev_kv; Next reads the PrevKv of put
	// events notified without it (Hub.fixPrev).
	prevKV bool
}

// WatchRequest creates one watcher.
type WatchRequest struct {
	// ID is the client-chosen watch ID, or AutoWatchID.
	ID  int64
	Key []byte
	// End: empty watches Key only, "\x00" every key >= Key, otherwise [Key, End).
	End []byte
	// StartRev: 0 means after the current revision; in the past replays
	// history first; in the future waits for it.
	StartRev       int64
	PrevKV         bool
	ProgressNotify bool
	Fragment       bool
	NoPut          bool
	NoDelete       bool
}

type watcherState uint8

const (
	stateSynced watcherState = iota
	stateUnsynced
	stateDead
)

type watcher struct {
	s        *Stream
	id       int64
	key, end []byte
	fromKey  bool
	startRev int64

	prevKV, progressNotify, fragment, noPut, noDelete bool

	// Guarded by hub.mu.
	state watcherState
	// minRev is the next revision this watcher needs: it has been sent
	// every event below it.
	minRev        int64
	sentSinceTick bool
	scratch       []*mvccpb.Event
	// chosen marks the watchers served by the running catch-up round.
	chosen bool
}

func (w *watcher) single() bool { return len(w.end) == 0 && !w.fromKey }

func (w *watcher) rangeID() rangeID {
	return rangeID{key: string(w.key), end: string(w.end), fromKey: w.fromKey}
}

func (w *watcher) filtered(ev *mvccpb.Event) bool {
	return (w.noPut && ev.Type == mvccpb.Event_PUT) || (w.noDelete && ev.Type == mvccpb.Event_DELETE)
}

// maxQueuedCtrl bounds queued control responses (created, canceled,
// progress): a client that sends requests without reading responses is
// slowed down instead of growing the queue (etcd blocks the same way).
const maxQueuedCtrl = 64

// Stream is the server side of one client watch stream: many watchers
// multiplexed onto one ordered response queue.
type Stream struct {
	h *Hub

	// Guarded by hub.mu.
	watchers        map[int64]*watcher
	nextID          int64
	closed          bool
	progressPending bool
	// progressMin is the store revision when progress was requested: the
	// answer must not report less, as etcd answers with its current revision.
	progressMin int64

	unsyncedN atomic.Int32

	mu      sync.Mutex // guards every field below
	q       []*Response
	head    int
	bytes   int
	ctrl    int
	qclosed bool
	wake    chan struct{}
	ctrlc   chan struct{}
	done    chan struct{}
}

// NewStream opens a stream on the hub.
func (h *Hub) NewStream() *Stream {
	s := &Stream{
		h:        h,
		watchers: make(map[int64]*watcher),
		wake:     make(chan struct{}, 1),
		ctrlc:    make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.closed, s.qclosed = true, true
		close(s.done)
		return s
	}
	h.streams[s] = struct{}{}
	return s
}

func eventSize(ev *mvccpb.Event) int {
	n := 32 + len(ev.Kv.Key) + len(ev.Kv.Value)
	if ev.PrevKv != nil {
		n += 32 + len(ev.PrevKv.Key) + len(ev.PrevKv.Value)
	}
	return n
}

func (s *Stream) fullLocked() bool {
	return s.bytes >= s.h.opts.MaxStreamBytes || len(s.q)-s.head >= s.h.opts.MaxStreamResponses
}

func (s *Stream) full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fullLocked()
}

// enqueue appends r unless the queue is full and force is false. Control
// responses and catch-up batches force: they are bounded elsewhere.
func (s *Stream) enqueue(r *Response, force bool) bool {
	r.size = 16
	for _, ev := range r.Events {
		r.size += eventSize(ev)
	}
	s.mu.Lock()
	if s.qclosed {
		s.mu.Unlock()
		return true // dropped: nobody reads any more
	}
	if !force && s.fullLocked() {
		s.mu.Unlock()
		return false
	}
	s.q = append(s.q, r)
	s.bytes += r.size
	if r.ctrl {
		s.ctrl++
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true
}

func (s *Stream) enqueueCtrl(r *Response) {
	r.ctrl = true
	s.enqueue(r, true)
}

// Next blocks until the next response is due, the stream is closed
// (ErrClosed) or ctx ends.
func (s *Stream) Next(ctx context.Context) (*Response, error) {
	for {
		s.mu.Lock()
		if s.qclosed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if s.head < len(s.q) {
			r := s.q[s.head]
			s.q[s.head] = nil
			s.head++
			if s.head == len(s.q) {
				s.q, s.head = s.q[:0], 0
			} else if s.head >= 1024 && 2*s.head >= len(s.q) {
				n := copy(s.q, s.q[s.head:])
				clear(s.q[n:])
				s.q, s.head = s.q[:n], 0
			}
			s.bytes -= r.size
			if r.ctrl {
				s.ctrl--
			}
			roomy := s.bytes <= s.h.opts.MaxStreamBytes/2 && len(s.q)-s.head <= s.h.opts.MaxStreamResponses/2
			s.mu.Unlock()
			if r.ctrl {
				select {
				case s.ctrlc <- struct{}{}:
				default:
				}
			}
			if roomy && s.unsyncedN.Load() > 0 {
				s.h.kick()
			}
			return s.h.fixPrev(ctx, r), nil
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-s.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// waitCtrl applies back-pressure to requests while too many control
// responses are queued.
func (s *Stream) waitCtrl(ctx context.Context) error {
	for {
		s.mu.Lock()
		closed, n := s.qclosed, s.ctrl
		s.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if n < maxQueuedCtrl {
			return nil
		}
		select {
		case <-s.ctrlc:
		case <-s.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Watch creates a watcher and queues its created response (or a created and
// canceled response with watch ID -1 on error, as etcd does). It returns the
// watch ID.
func (s *Stream) Watch(ctx context.Context, req WatchRequest) (int64, error) {
	if err := s.waitCtrl(ctx); err != nil {
		return InvalidWatchID, err
	}
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return InvalidWatchID, ErrClosed
	}
	// Count the watcher before reading the store's revision (see Notify);
	// every return below that creates no live watcher undoes it.
	h.watchers.Add(1)
	live := false
	defer func() {
		if !live {
			h.watchers.Add(-1)
		}
	}()
	cur := h.hist.Rev()
	h.absorbIdleLocked()
	fail := func(err error) (int64, error) {
		s.enqueueCtrl(&Response{WatchID: InvalidWatchID, Created: true, Canceled: true, CancelReason: err.Error(), Revision: cur})
		return InvalidWatchID, err
	}
	fromKey := len(req.End) == 1 && req.End[0] == 0
	var end []byte
	if !fromKey && len(req.End) > 0 {
		if bytes.Compare(req.Key, req.End) >= 0 {
			return fail(ErrEmptyRange)
		}
		end = bytes.Clone(req.End)
	}
	id := req.ID
	if id == AutoWatchID {
		for s.watchers[s.nextID] != nil {
			s.nextID++
		}
		id = s.nextID
		s.nextID++
	} else if s.watchers[id] != nil {
		return fail(ErrDuplicateID)
	}
	w := &watcher{
		s: s, id: id, key: bytes.Clone(req.Key), end: end, fromKey: fromKey, startRev: req.StartRev,
		prevKV: req.PrevKV, progressNotify: req.ProgressNotify, fragment: req.Fragment,
		noPut: req.NoPut, noDelete: req.NoDelete,
	}
	if w.key == nil {
		w.key = []byte{}
	}
	s.watchers[id] = w
	s.enqueueCtrl(&Response{WatchID: id, Created: true, Revision: cur})

	compact := h.hist.CompactRev()
	switch {
	case req.StartRev > 0 && req.StartRev < compact:
		w.state = stateDead
		s.enqueueCtrl(&Response{WatchID: id, Canceled: true, CompactRevision: compact})
	case req.StartRev <= 0 || req.StartRev > cur:
		// The store may be ahead of the dispatcher: minRev filters out the
		// revisions it already committed before this watch.
		w.minRev = max(cur+1, req.StartRev)
		w.state = stateSynced
		h.synced.add(w)
		live = true
	default:
		w.minRev = req.StartRev
		w.state = stateUnsynced
		h.unsynced.add(w)
		s.unsyncedN.Add(1)
		h.kick()
		live = true
	}
	return id, nil
}

// Reject queues a created-and-canceled response with watch ID -1 for a
// creation refused before reaching the hub (auth, negative start revision).
func (s *Stream) Reject(ctx context.Context, reason string) error {
	if err := s.waitCtrl(ctx); err != nil {
		return err
	}
	s.enqueueCtrl(&Response{WatchID: InvalidWatchID, Created: true, Canceled: true, CancelReason: reason, Revision: s.h.hist.Rev()})
	return nil
}

// Cancel removes a watcher and queues its canceled response; after it no
// event of that watcher is queued. Unknown IDs are ignored, as in etcd.
func (s *Stream) Cancel(ctx context.Context, id int64) (bool, error) {
	if err := s.waitCtrl(ctx); err != nil {
		return false, err
	}
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	w := s.watchers[id]
	if w == nil || s.closed {
		return false, nil
	}
	h.removeLocked(w)
	delete(s.watchers, id)
	s.enqueueCtrl(&Response{WatchID: id, Canceled: true, Revision: h.hist.Rev()})
	if s.progressPending && s.progressAllLocked() {
		delete(h.waiting, s)
	}
	return true, nil
}

// RequestProgress asks for a progress response with watch ID -1. It is
// queued once every watcher of the stream has been sent all events up to
// the hub's revision, carrying that revision. Nothing is sent to a stream
// without watchers.
func (s *Stream) RequestProgress(ctx context.Context) error {
	if err := s.waitCtrl(ctx); err != nil {
		return err
	}
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.progressPending = true
	s.progressMin = max(s.progressMin, h.hist.Rev())
	h.absorbIdleLocked()
	if !s.progressAllLocked() {
		h.waiting[s] = struct{}{}
	}
	return nil
}

// progressAllLocked answers a pending progress request if it can.
func (s *Stream) progressAllLocked() bool {
	if !s.progressPending {
		return true
	}
	if s.h.rev < s.progressMin {
		return false
	}
	live := 0
	for _, w := range s.watchers {
		if w.state == stateDead {
			continue
		}
		if !s.h.readyLocked(w) {
			return false
		}
		live++
	}
	s.progressPending = false
	if live > 0 {
		s.enqueueCtrl(&Response{WatchID: InvalidWatchID, Revision: s.h.rev})
	}
	return true
}

// ProgressTick queues a progress response for every progress_notify watcher
// that is synced and was sent no events since the previous tick. Call it
// every --watch-progress-notify-interval.
func (s *Stream) ProgressTick() {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range s.watchers {
		if !w.progressNotify || w.state == stateDead {
			continue
		}
		if !w.sentSinceTick && h.readyLocked(w) {
			s.enqueueCtrl(&Response{WatchID: w.id, Revision: h.rev})
		}
		w.sentSinceTick = false
	}
}

// Close frees every watcher of the stream and drops queued responses.
func (s *Stream) Close() {
	h := s.h
	h.mu.Lock()
	if s.closed {
		h.mu.Unlock()
		return
	}
	s.closed = true
	for id, w := range s.watchers {
		h.removeLocked(w)
		delete(s.watchers, id)
	}
	delete(h.streams, s)
	delete(h.waiting, s)
	h.mu.Unlock()

	s.mu.Lock()
	s.qclosed = true
	clear(s.q)
	s.q, s.head, s.bytes, s.ctrl = nil, 0, 0, 0
	s.mu.Unlock()
	close(s.done)
}
