package transport

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
)

// Handler serves the peer protocol and the handlers added with HandleFunc.
// Mount it at PathPrefix on the peer listener.
func (t *Transport) Handler() http.Handler { return t.mux }

func (t *Transport) rejectCluster(w http.ResponseWriter, r *http.Request, remote string) {
	t.rejStreams.Add(1)
	from := RequestFrom(r)
	if f := t.cfg.Metrics.ReceiveFailed; f != nil {
		f(from)
	}
	t.lg.Warn("rejected a request from a member of another cluster",
		zap.String("local-cluster-id", idString(t.clusterID.Load())),
		zap.String("remote-cluster-id", remote),
		zap.String("remote-peer-id", idString(from)),
		zap.String("remote-addr", r.RemoteAddr),
		zap.String("path", r.URL.Path))
	refuse(w, "cluster ID mismatch", http.StatusPreconditionFailed)
}

// errMemberRemoved is etcd's answer to a removed member.
const errMemberRemoved = "the member has been permanently removed from the cluster"

// refuse answers a request whose body will not be read. Without closing the
// connection, the server would first try to drain the body, which for a
// stream never ends, and the answer would never be sent.
func refuse(w http.ResponseWriter, msg string, code int) {
	w.Header().Set("Connection", "close")
	http.Error(w, msg, code)
}

func (t *Transport) rejectStream(w http.ResponseWriter, r *http.Request, code int, reason string) {
	t.rejStreams.Add(1)
	if f := t.cfg.Metrics.ReceiveFailed; f != nil {
		f(RequestFrom(r))
	}
	t.lg.Warn("rejected a peer stream", zap.String("reason", reason),
		zap.String("remote-addr", r.RemoteAddr), zap.String("path", r.URL.Path))
	refuse(w, reason, code)
}

// serveStream receives one stream of frames and steps each message.
func (t *Transport) serveStream(w http.ResponseWriter, r *http.Request) {
	from, ok := t.admitPeer(w, r, "stream")
	if !ok {
		return
	}
	defer t.inbound.Done()
	rft := t.raft.Load().r

	rc := http.NewResponseController(w)
	// The stream lives as long as the members do: lift any timeouts the
	// peer server was configured with.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	// HTTP/1.1 would otherwise drain the request body before sending the
	// response; the early 200 tells the sender the stream is accepted.
	_ = rc.EnableFullDuplex()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// Stop must not wait for the sender to close: unblock the body read.
	stopWatch := context.AfterFunc(t.ctx, func() {
		cancel()
		_ = rc.SetReadDeadline(time.Now())
	})
	defer stopWatch()

	lg := t.lg.With(zap.String("remote-peer-id", idString(from)), zap.String("path", r.URL.Path))
	fr := newFrameReader(r.Body, t.cfg.MaxFrameSize)
	for {
		m := &raftpb.Message{}
		n, err := fr.next(m)
		if err != nil {
			if errors.Is(err, errCorrupt) {
				t.corrupt.Add(1)
				if f := t.cfg.Metrics.ReceiveFailed; f != nil {
					f(from)
				}
				lg.Warn("dropped a corrupt frame; resetting the connection", zap.Error(err))
				// Nothing after a bad frame can be trusted: drop the
				// connection rather than let the server drain the body.
				if conn, _, herr := rc.Hijack(); herr == nil {
					_ = conn.Close()
					return
				}
				panic(http.ErrAbortHandler) // HTTP/2 cannot be hijacked
			}
			if !errors.Is(err, io.EOF) && t.ctx.Err() == nil {
				lg.Debug("peer stream ended", zap.Error(err))
			}
			return
		}
		t.recvMsgs.Add(1)
		t.recvBytes.Add(uint64(n))
		if f := t.cfg.Metrics.Received; f != nil {
			f(from, n)
		}
		if f := t.cfg.IsRemoved; f != nil && f(from) {
			// Removed while its stream was open: end the stream; the
			// member's next attempt is refused with 410 Gone.
			lg.Info("ending the stream of a removed member")
			return
		}
		if m.GetFrom() != from || m.GetTo() != t.cfg.LocalID {
			t.rejMsgs.Add(1)
			lg.Warn("dropped a message with a wrong sender or addressee",
				zap.String("from", idString(m.GetFrom())), zap.String("to", idString(m.GetTo())),
				zap.Stringer("type", m.GetType()))
			continue
		}
		if err := rft.Step(ctx, m); err != nil {
			if ctx.Err() != nil || errors.Is(err, raft.ErrStopped) {
				return
			}
			lg.Debug("raft did not accept a message", zap.Stringer("type", m.GetType()), zap.Error(err))
		}
	}
}

// admitPeer runs the checks every inbound peer request (a message stream or
// a snapshot, named by what) must pass: method, protocol version, cluster,
// addressee, sender, not removed, transport running and raft attached.
// When it returns ok it has counted the request in t.inbound (the caller
// calls t.inbound.Done when finished); otherwise it has answered it.
func (t *Transport) admitPeer(w http.ResponseWriter, r *http.Request, what string) (from uint64, ok bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(w, "method not allowed", http.StatusMethodNotAllowed)
		return 0, false
	}
	if v := r.Header.Get(HeaderVersion); v != protocolVersion {
		t.rejectStream(w, r, http.StatusPreconditionFailed, "unsupported peer protocol version "+strconv.Quote(v))
		return 0, false
	}
	if cid := r.Header.Get(HeaderClusterID); cid != idString(t.clusterID.Load()) {
		t.rejectCluster(w, r, cid)
		return 0, false
	}
	if to := r.Header.Get(HeaderTo); to != idString(t.cfg.LocalID) {
		t.rejectStream(w, r, http.StatusPreconditionFailed, what+" addressed to member "+strconv.Quote(to)+", this is "+idString(t.cfg.LocalID))
		return 0, false
	}
	from = RequestFrom(r)
	if from == 0 {
		t.rejectStream(w, r, http.StatusBadRequest, "missing or invalid "+HeaderFrom)
		return 0, false
	}
	if f := t.cfg.IsRemoved; f != nil && f(from) {
		t.rejectStream(w, r, http.StatusGone, errMemberRemoved)
		return 0, false
	}
	t.mu.RLock()
	if t.stopped {
		t.mu.RUnlock()
		refuse(w, "transport stopped", http.StatusServiceUnavailable)
		return 0, false
	}
	t.inbound.Add(1)
	t.mu.RUnlock()
	select {
	case <-t.raftReady:
		return from, true
	case <-t.ctx.Done():
		refuse(w, "transport stopped", http.StatusServiceUnavailable)
	case <-r.Context().Done():
	}
	t.inbound.Done()
	return 0, false
}
