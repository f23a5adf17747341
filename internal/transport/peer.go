package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
)

const (
	// A batch is cut at whichever limit comes first; raft's MsgApp is at
	// most about 1 MiB, so a batch holds a few of them or many small ones.
	maxBatchMsgs  = 1024
	maxBatchBytes = 4 << 20

	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

var (
	errConnClosed = errors.New("transport: stream closed locally")
	errUnanswered = errors.New("transport: the peer did not answer the stream request")
)

// peer sends to one remote member over two streams.
type peer struct {
	t  *Transport
	id uint64
	lg *zap.Logger

	mu   sync.Mutex // guards urls and next
	urls []string
	next int // index in urls of the URL to dial next

	app, msg *stream
	active   atomic.Int32 // established streams
	snapBusy atomic.Bool  // a snapshot is being sent
	// activeSince is when the peer last became reachable, as nanoseconds
	// after t.epoch plus one (monotonic), 0 while it is not: etcd's
	// ActiveSince, for the reconfiguration checks.
	activeSince atomic.Int64

	unreachable chan struct{}            // coalesces ReportUnreachable calls
	snapStatus  chan raft.SnapshotStatus // outcomes of MsgSnap sends
	ctx         context.Context          // canceled by stop; parent of the streams' requests
	cancel      context.CancelFunc
	stopc       chan struct{}
	stopOnce    sync.Once
	wg          sync.WaitGroup
}

func newPeer(t *Transport, id uint64, urls []string) *peer {
	p := &peer{
		t:           t,
		id:          id,
		lg:          t.lg.With(zap.String("remote-peer-id", idString(id))),
		urls:        urls,
		unreachable: make(chan struct{}, 1),
		snapStatus:  make(chan raft.SnapshotStatus, 64),
		stopc:       make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(t.ctx)
	p.app = &stream{p: p, path: pathMsgApp, name: "msgapp", q: make(chan *raftpb.Message, t.cfg.QueueSize)}
	// The message stream is kept connected even when idle, as etcd keeps
	// its streams to every peer, so that reachability is known between
	// members that have nothing to say to each other (two followers).
	p.msg = &stream{p: p, path: pathMessage, name: "message", q: make(chan *raftpb.Message, t.cfg.QueueSize), eager: true}
	return p
}

func (p *peer) start() {
	p.wg.Add(3)
	go p.app.run()
	go p.msg.run()
	go p.report()
}

func (p *peer) stop() {
	p.stopOnce.Do(func() {
		close(p.stopc)
		p.cancel() // unblocks a write to a peer that stopped reading
	})
	p.wg.Wait()
}

func (p *peer) getURLs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.urls...)
}

func (p *peer) setURLs(urls []string) {
	p.mu.Lock()
	p.urls, p.next = urls, 0
	p.mu.Unlock()
	// Established streams may lead to the old address: start over.
	p.app.reset()
	p.msg.reset()
}

// pickURL returns the URL to dial.
func (p *peer) pickURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.urls[p.next%len(p.urls)]
}

// failedURL moves on to the next URL after u failed.
func (p *peer) failedURL(u string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.urls[p.next%len(p.urls)] == u {
		p.next = (p.next + 1) % len(p.urls)
	}
}

// send queues m; it never blocks.
func (p *peer) send(m *raftpb.Message) {
	if m.GetType() == raftpb.MessageType_MsgSnap && p.t.cfg.Snapshots != nil {
		p.sendSnapshot(m)
		return
	}
	s := p.msg
	if t := m.GetType(); t == raftpb.MessageType_MsgApp || t == raftpb.MessageType_MsgSnap {
		s = p.app
	}
	select {
	case s.q <- m:
	default:
		p.dropped(m)
		p.signalUnreachable()
	}
}

func (p *peer) dropped(m *raftpb.Message) {
	p.t.drop(p.id, 1)
	if m.GetType() == raftpb.MessageType_MsgSnap {
		p.reportSnapshot(raft.SnapshotFailure)
	}
}

func (p *peer) signalUnreachable() {
	select {
	case p.unreachable <- struct{}{}:
	default: // a report is already pending
	}
}

func (p *peer) reportSnapshot(st raft.SnapshotStatus) {
	select {
	case p.snapStatus <- st:
	default:
		// 64 snapshot outcomes pending means raft is not listening anyway.
		p.lg.Warn("dropped a snapshot status report", zap.Int("status", int(st)))
	}
}

// report calls into raft outside Send's caller: raft's Report* methods wait
// for raft's loop, which may be the goroutine calling Send.
func (p *peer) report() {
	defer p.wg.Done()
	for {
		select {
		case <-p.unreachable:
			p.t.reportUnreachable(p.id)
		case st := <-p.snapStatus:
			p.t.reportSnapshot(p.id, st)
		case <-p.stopc:
			return
		}
	}
}

func (p *peer) streamUp(s *stream, url string) {
	s.p.lg.Debug("peer stream established", zap.String("stream", s.name), zap.String("url", url))
	if p.active.Add(1) == 1 {
		p.activeSince.Store(int64(time.Since(p.t.epoch)) + 1)
		p.lg.Info("peer became active", zap.String("url", url))
		if f := p.t.cfg.Metrics.PeerActive; f != nil {
			f(p.id, true)
		}
	}
}

func (p *peer) streamDown(s *stream, err error) {
	s.p.lg.Debug("peer stream closed", zap.String("stream", s.name), zap.Error(err))
	if p.active.Add(-1) == 0 {
		p.activeSince.Store(0)
		p.lg.Warn("peer became inactive", zap.Error(err))
		if f := p.t.cfg.Metrics.PeerActive; f != nil {
			f(p.id, false)
		}
	}
}

// activeSinceTime is activeSince as a time with a monotonic reading, or
// the zero time while the peer is not reachable.
func (p *peer) activeSinceTime() time.Time {
	if ns := p.activeSince.Load(); ns != 0 {
		return p.t.epoch.Add(time.Duration(ns - 1))
	}
	return time.Time{}
}

// stream is one class of messages to a peer: a queue and the goroutine
// writing it to a long-lived HTTP request body.
type stream struct {
	p    *peer
	path string
	name string
	q    chan *raftpb.Message
	// eager streams connect without waiting for a message to send.
	eager bool

	mu  sync.Mutex // guards cur
	cur *conn      // the open connection, for reset
}

// conn is one attempt at a stream: a POST whose body is a pipe the stream
// writes frames into.
type conn struct {
	url      string
	pw       *io.PipeWriter
	cancel   context.CancelFunc
	accepted chan struct{} // closed when the peer answered 200
	done     chan struct{} // closed when the request finished
	err      error         // why it finished; read only after done
	reset    atomic.Bool   // closed by reset, not by a failure
}

// reset closes the open connection, if any; run reconnects.
func (s *stream) reset() {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c != nil {
		c.reset.Store(true)
		c.cancel()
		// A request not answered yet waits for its idle body as well.
		c.pw.CloseWithError(errConnClosed)
	}
}

func (s *stream) run() {
	defer s.p.wg.Done()
	var (
		c       *conn
		buf     []byte
		backoff = minBackoff
		failing bool // a failure was logged at warn level since the last success
	)
	defer func() {
		if c != nil {
			s.closeConn(c)
		}
	}()
	for {
		if c == nil && s.eager {
			c = s.dial()
		}
		var closed <-chan struct{}
		if c != nil {
			closed = c.done
		}
		var first *raftpb.Message
		select {
		case first = <-s.q:
		case <-closed:
			// The peer ended the stream while we were idle (it restarted,
			// or it aborted after a bad frame): what was in flight may be
			// lost. Reconnect on the next send.
			wasUp := isClosed(c.accepted)
			wasReset := c.reset.Load()
			s.closeConn(c)
			c = nil
			if wasReset {
				// UpdatePeer closed it to move to the new address: dial
				// there at once. Pausing would drop what raft sends
				// meanwhile, and the peer is not unreachable.
				continue
			}
			s.p.signalUnreachable()
			if s.eager {
				// Redial by itself, but not in a tight loop on a peer
				// that is down.
				if wasUp {
					backoff = minBackoff
				}
				if !s.pause(backoff) {
					return
				}
				backoff = min(2*backoff, maxBackoff)
			}
			continue
		case <-s.p.stopc:
			return
		}
		var n int
		var snaps int
		buf, n, snaps = s.batch(buf[:0], first)
		if n == 0 {
			continue
		}
		if c != nil && c.reset.Load() {
			s.closeConn(c) // UpdatePeer moved the peer: do not write to the old address
			c = nil
		}
		if c == nil {
			c = s.dial()
		}
		if _, err := c.pw.Write(buf); err != nil {
			s.closeConn(c)
			if c.err != nil {
				err = c.err
			}
			s.p.t.drop(s.p.id, n)
			for range snaps {
				s.p.reportSnapshot(raft.SnapshotFailure)
			}
			s.p.signalUnreachable()
			wasReset := c.reset.Load()
			if !wasReset {
				s.p.failedURL(c.url)
			}
			c = nil
			switch {
			case s.p.ctx.Err() != nil:
				return
			case wasReset:
				// UpdatePeer closed it on purpose: reconnect at once.
				s.p.lg.Debug("peer stream reset", zap.String("stream", s.name))
				continue
			case !failing:
				s.p.lg.Warn("cannot send to peer; will retry", zap.String("stream", s.name), zap.Error(err))
				failing = true
			default:
				s.p.lg.Debug("cannot send to peer", zap.String("stream", s.name), zap.Error(err))
			}
			if !s.pause(backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		s.p.t.sentMsgs.Add(uint64(n))
		s.p.t.sentBytes.Add(uint64(len(buf)))
		if f := s.p.t.cfg.Metrics.Sent; f != nil {
			f(s.p.id, len(buf))
		}
		for range snaps {
			s.p.reportSnapshot(raft.SnapshotFinish)
		}
		select {
		case <-c.accepted:
			backoff, failing = minBackoff, false
		default:
		}
		if cap(buf) > 2*maxBatchBytes {
			buf = nil // do not pin one huge snapshot's buffer
		}
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// batch encodes first and whatever else is queued, up to the batch limits.
// It returns the frames, how many messages they hold and how many of those
// are snapshots.
func (s *stream) batch(buf []byte, first *raftpb.Message) ([]byte, int, int) {
	n, snaps := 0, 0
	add := func(m *raftpb.Message) {
		b, err := appendFrame(buf, m)
		if err != nil {
			s.p.lg.Error("dropped a message that cannot be encoded", zap.Error(err))
			s.p.dropped(m)
			return
		}
		buf = b
		n++
		if m.GetType() == raftpb.MessageType_MsgSnap {
			snaps++
		}
	}
	add(first)
	for n < maxBatchMsgs && len(buf) < maxBatchBytes {
		select {
		case m := <-s.q:
			add(m)
		default:
			return buf, n, snaps
		}
	}
	return buf, n, snaps
}

// pause waits d before the next attempt, dropping what is queued meanwhile:
// raft retransmits, and stale heartbeats and appends would only delay
// fresh ones after reconnecting. It returns false if the peer stopped.
func (s *stream) pause(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m := <-s.q:
			s.p.dropped(m)
		case <-timer.C:
			return true
		case <-s.p.stopc:
			return false
		}
	}
}

// dial starts a stream request; it does not wait for the connection: the
// first write blocks until the request body is being sent, or fails.
func (s *stream) dial() *conn {
	t := s.p.t
	ctx, cancel := context.WithCancel(s.p.ctx)
	pr, pw := io.Pipe()
	c := &conn{
		url:      s.p.pickURL(),
		pw:       pw,
		cancel:   cancel,
		accepted: make(chan struct{}),
		done:     make(chan struct{}),
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+s.path, pr)
	if err != nil {
		c.err = fmt.Errorf("transport: stream request: %w", err)
		pr.CloseWithError(c.err)
		close(c.done)
		return c
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/octet-stream")
	t.setHeaders(req.Header, s.p.id)
	s.mu.Lock()
	s.cur = c
	s.mu.Unlock()
	s.p.wg.Add(1)
	go s.roundTrip(c, req, pr)
	return c
}

func (s *stream) roundTrip(c *conn, req *http.Request, pr *io.PipeReader) {
	defer s.p.wg.Done()
	defer close(c.done)
	// The peer answers a stream at once (internal/transport/handler.go).
	// When the connection is closed after the request's header went out
	// but before an answer (a member behind a proxy that is not listening
	// yet), net/http's RoundTrip does not return: it waits for its body
	// writer, which waits for our pipe, and an idle stream (two followers)
	// writes nothing. The stream would stay "connecting" for ever and the
	// peer never count as reachable, so MemberRemove under
	// --strict-reconfig-check refused for good (CI, robustness
	// replace-member). Cancelling alone is not enough for the same
	// reason; closing the pipe ends both.
	unanswered := time.AfterFunc(s.p.t.cfg.AcceptTimeout, func() {
		c.cancel()
		c.pw.CloseWithError(errUnanswered)
	})
	resp, err := s.p.t.rt.RoundTrip(req)
	unanswered.Stop()
	if err != nil {
		c.err = err
		pr.CloseWithError(err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusGone {
		if f := s.p.t.cfg.Removed; f != nil {
			f()
		}
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		c.err = fmt.Errorf("transport: peer refused the %s stream: %s: %s", s.name, resp.Status, bytes.TrimSpace(msg))
		pr.CloseWithError(c.err)
		return
	}
	close(c.accepted)
	s.p.streamUp(s, c.url)
	// The peer sends nothing back; the response ends when the peer ends
	// the stream, which tells us even while we have nothing to send.
	_, err = io.Copy(io.Discard, resp.Body)
	if err == nil {
		err = errors.New("transport: peer closed the stream")
	}
	c.err = err
	pr.CloseWithError(err)
	s.p.streamDown(s, err)
}

func (s *stream) closeConn(c *conn) {
	c.cancel()
	c.pw.CloseWithError(errConnClosed)
	<-c.done
	s.mu.Lock()
	if s.cur == c {
		s.cur = nil
	}
	s.mu.Unlock()
}
