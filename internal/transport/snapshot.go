package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/failpoint"
	"github.com/metastore/metastore/internal/peerapi"
)

// pathSnapshot receives one MsgSnap followed by the state image it stands
// for (etcd's /raft/snapshot). A snapshot does not travel on the msgapp
// stream: it can be many GiB, and the stream must keep carrying appends.
const pathSnapshot = peerapi.PathSnapshot

// SnapshotImage is a state image being sent; Close releases it.
type SnapshotImage interface {
	io.WriterTo
	Close() error
}

// Snapshots ships and takes in the state a MsgSnap stands for. Raft's
// MsgSnap carries only metadata: the state machine is the engine.
type Snapshots interface {
	// OpenSnapshot returns m with the metadata of an image of the local
	// state (taken at or after m's snapshot index) and the image itself.
	OpenSnapshot(m *raftpb.Message) (*raftpb.Message, SnapshotImage, error)
	// ReceiveSnapshot reads, checks and stages the image of m from r. The
	// transport steps m into raft once it returns nil. ErrSnapshotBusy
	// asks the sender to try later.
	ReceiveSnapshot(ctx context.Context, m *raftpb.Message, r io.Reader) error
}

// ErrSnapshotBusy is returned by ReceiveSnapshot while an earlier snapshot
// awaits installation.
var ErrSnapshotBusy = errors.New("transport: an earlier snapshot is being installed")

// sendSnapshot streams m and its image to the peer on its own request and
// reports the outcome to raft. At most one runs per peer; raft sends no
// second MsgSnap to a peer before the first is reported.
func (p *peer) sendSnapshot(m *raftpb.Message) {
	if !p.snapBusy.CompareAndSwap(false, true) {
		p.dropped(m)
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.snapBusy.Store(false)
		start := time.Now()
		n, err := p.postSnapshot(m)
		if err != nil {
			p.t.drop(p.id, 1)
			p.lg.Warn("sending a snapshot failed", zap.Uint64("index", m.GetSnapshot().GetMetadata().GetIndex()), zap.Error(err))
			p.reportSnapshot(raft.SnapshotFailure)
			p.signalUnreachable()
			return
		}
		p.t.sentMsgs.Add(1)
		p.t.sentBytes.Add(uint64(n))
		if f := p.t.cfg.Metrics.Sent; f != nil {
			f(p.id, int(n))
		}
		p.lg.Info("sent a snapshot", zap.Int64("bytes", n), zap.Duration("took", time.Since(start)))
		p.reportSnapshot(raft.SnapshotFinish)
	}()
}

func (p *peer) postSnapshot(m *raftpb.Message) (int64, error) {
	failpoint.Inject(failpoint.RaftBeforeSendSnap)
	out, img, err := p.t.cfg.Snapshots.OpenSnapshot(m)
	if err != nil {
		return 0, fmt.Errorf("open snapshot: %w", err)
	}
	defer img.Close()
	p.lg.Info("sending a snapshot", zap.Uint64("index", out.GetSnapshot().GetMetadata().GetIndex()),
		zap.Uint64("term", out.GetSnapshot().GetMetadata().GetTerm()))
	hdr, err := appendFrame(nil, out)
	if err != nil {
		return 0, err
	}
	body := newImageBody(hdr, img)
	// The request may end before the body was written (a refusal, a
	// broken connection): closing the body fails the writes still to come,
	// and the image is released only once its writer has returned.
	defer body.finish()
	req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, p.pickURL()+pathSnapshot, body)
	if err != nil {
		return 0, err
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/octet-stream")
	p.t.setHeaders(req.Header, p.id)
	resp, err := p.t.rt.RoundTrip(req)
	if err != nil {
		p.failedURL(req.URL.Scheme + "://" + req.URL.Host)
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusNoContent {
		return 0, fmt.Errorf("peer refused the snapshot: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return body.finish()
}

// imageBody is a snapshot request's body: the message frame, then the
// image. net/http copies a body that implements io.WriterTo by calling its
// WriteTo with the connection's (chunked) writer, so each image chunk goes
// to the socket in one write as soon as it is encoded. Through an io.Pipe,
// every byte was copied once more and written 32 KiB at a time: three
// system calls per 32 KiB instead of per MiB, the largest CPU cost of the
// sending member after reading the values (docs/benchmarks.md, Scale).
// Read serves a reader that does not use WriteTo, through a pipe.
type imageBody struct {
	hdr    []byte
	img    SnapshotImage
	closed chan struct{} // closed by Close: writes from then on fail
	done   chan struct{} // closed when the writer (WriteTo or the pipe's) returned

	mu      sync.Mutex // guards the fields below
	started bool       // a writer started (at most one does)
	isClose bool
	pr      *io.PipeReader // the pipe Read serves, if Read was called
	n       int64          // bytes written, once done is closed
	err     error          // the writer's error, once done is closed
}

func newImageBody(hdr []byte, img SnapshotImage) *imageBody {
	return &imageBody{hdr: hdr, img: img, closed: make(chan struct{}), done: make(chan struct{})}
}

var errBodyClosed = errors.New("transport: snapshot request ended")

// start claims the body for one writer.
func (b *imageBody) start() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started || b.isClose {
		return false
	}
	b.started = true
	return true
}

// WriteTo implements io.WriterTo.
func (b *imageBody) WriteTo(w io.Writer) (int64, error) {
	if !b.start() {
		return 0, errBodyClosed
	}
	return b.write(w)
}

func (b *imageBody) write(w io.Writer) (int64, error) {
	gw := &guardedWriter{w: w, closed: b.closed}
	n, err := gw.Write(b.hdr)
	written := int64(n)
	if err == nil {
		var m int64
		m, err = b.img.WriteTo(gw)
		written += m
	}
	b.mu.Lock()
	b.n, b.err = written, err
	b.mu.Unlock()
	close(b.done)
	return written, err
}

// Read implements io.Reader.
func (b *imageBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.pr == nil {
		if b.started || b.isClose {
			b.mu.Unlock()
			return 0, errBodyClosed
		}
		b.started = true
		pr, pw := io.Pipe()
		b.pr = pr
		go func() {
			_, err := b.write(pw)
			pw.CloseWithError(err)
		}()
	}
	pr := b.pr
	b.mu.Unlock()
	return pr.Read(p)
}

// Close implements io.Closer; net/http calls it when the request is done
// with the body.
func (b *imageBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.isClose {
		b.isClose = true
		close(b.closed)
		if b.pr != nil {
			b.pr.Close()
		}
	}
	return nil
}

// finish closes the body and waits for its writer, if one started; it
// returns the bytes written.
func (b *imageBody) finish() (int64, error) {
	b.Close()
	b.mu.Lock()
	started := b.started
	b.mu.Unlock()
	if !started {
		return 0, nil
	}
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n, nil
}

// guardedWriter fails every write once closed is closed.
type guardedWriter struct {
	w      io.Writer
	closed <-chan struct{}
}

func (g *guardedWriter) Write(p []byte) (int, error) {
	select {
	case <-g.closed:
		return 0, errBodyClosed
	default:
	}
	return g.w.Write(p)
}

// serveSnapshot receives a MsgSnap and its image, has it staged, then
// steps the message into raft, which installs the staged image through
// the apply loop.
func (t *Transport) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	if t.cfg.Snapshots == nil {
		t.rejectStream(w, r, http.StatusBadRequest, "no snapshot support")
		return
	}
	from, ok := t.admitPeer(w, r, "snapshot")
	if !ok {
		return
	}
	defer t.inbound.Done()
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{}) // an image of many GiB takes as long as it takes
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stopWatch := context.AfterFunc(t.ctx, func() {
		cancel()
		_ = rc.SetReadDeadline(time.Now())
	})
	defer stopWatch()

	// One inbound snapshot at a time: staging replaces the previous one.
	t.snapMu.Lock()
	defer t.snapMu.Unlock()
	lg := t.lg.With(zap.String("remote-peer-id", idString(from)))
	fr := newFrameReader(r.Body, t.cfg.MaxFrameSize)
	m := &raftpb.Message{}
	if _, err := fr.next(m); err != nil {
		t.corrupt.Add(1)
		lg.Warn("rejected a snapshot: bad message frame", zap.Error(err))
		refuse(w, "bad snapshot message: "+err.Error(), http.StatusBadRequest)
		return
	}
	if m.GetType() != raftpb.MessageType_MsgSnap || m.GetFrom() != from || m.GetTo() != t.cfg.LocalID || m.GetSnapshot().GetMetadata() == nil {
		t.rejMsgs.Add(1)
		refuse(w, "not a snapshot message for this member", http.StatusBadRequest)
		return
	}
	start := time.Now()
	lg.Info("receiving a snapshot", zap.Uint64("index", m.GetSnapshot().GetMetadata().GetIndex()))
	if err := t.cfg.Snapshots.ReceiveSnapshot(ctx, m, fr.r); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrSnapshotBusy) {
			code = http.StatusServiceUnavailable
		}
		lg.Warn("rejected a snapshot", zap.Error(err))
		refuse(w, err.Error(), code)
		return
	}
	t.recvMsgs.Add(1)
	rft := t.raft.Load().r
	if err := rft.Step(ctx, m); err != nil {
		lg.Warn("raft did not take the snapshot", zap.Error(err))
		refuse(w, "raft did not take the snapshot: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	lg.Info("received a snapshot", zap.Uint64("index", m.GetSnapshot().GetMetadata().GetIndex()), zap.Duration("took", time.Since(start)))
	w.WriteHeader(http.StatusNoContent)
}
