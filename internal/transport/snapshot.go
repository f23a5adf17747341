package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	pr, pw := io.Pipe()
	var written int64
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		n, err := pw.Write(hdr)
		written = int64(n)
		if err == nil {
			var m int64
			m, err = img.WriteTo(pw)
			written += m
		}
		pw.CloseWithError(err)
	}()
	defer func() {
		pr.Close() // unblocks the writer if the request ended early
		<-wrote
	}()
	req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, p.pickURL()+pathSnapshot, pr)
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
	pr.Close()
	<-wrote
	return written, nil
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
