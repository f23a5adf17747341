package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/peerapi"
)

// Raft is the local raft member the transport delivers to and reports to.
// raftnode.Node provides it.
type Raft interface {
	// Step delivers a message received from a peer.
	Step(ctx context.Context, m *raftpb.Message) error
	// ReportUnreachable tells raft that messages to id were lost.
	ReportUnreachable(id uint64)
	// ReportSnapshot tells raft whether a MsgSnap to id was delivered.
	ReportSnapshot(id uint64, status raft.SnapshotStatus)
}

// Metrics receives what the transport measures; nil fields are skipped.
// Hooks are called from the transport's goroutines and must not block.
type Metrics struct {
	// Sent counts bytes written to peer to (etcd_network_peer_sent_bytes_total).
	Sent func(to uint64, bytes int)
	// Received counts bytes received from peer from.
	Received func(from uint64, bytes int)
	// SendFailed counts messages to peer to that were dropped.
	SendFailed func(to uint64, msgs int)
	// ReceiveFailed counts streams from peer from that were rejected or
	// aborted because of a corrupt frame.
	ReceiveFailed func(from uint64)
	// PeerActive reports a peer becoming reachable or unreachable.
	PeerActive func(id uint64, active bool)
}

// Config configures a Transport.
type Config struct {
	LocalID   uint64
	ClusterID uint64
	Logger    *zap.Logger
	// Raft may be left nil and set later with SetRaft, since raftnode.Start
	// needs the Transport first.
	Raft Raft
	// DialTimeout bounds connecting to a peer (default 1s).
	DialTimeout time.Duration
	// AcceptTimeout bounds the wait for a peer's answer to a stream
	// request, which it gives before reading any frame (default 3s): a
	// request whose connection was closed unanswered, or that went
	// silent, is otherwise never given up while the stream is idle
	// (peer.go, roundTrip).
	AcceptTimeout time.Duration
	// WriteTimeout bounds one write to a peer connection; a peer that stops
	// reading for that long has its stream reset (default 5s).
	WriteTimeout time.Duration
	// QueueSize is the number of messages each stream to a peer can hold
	// (default 4096).
	QueueSize int
	// MaxFrameSize is the largest message accepted (default 128 MiB).
	MaxFrameSize int
	Metrics      Metrics
	// TLS, if set, is used to dial https peer URLs (--peer-cert-file and
	// friends); without it only http peer URLs are accepted. Streams are
	// HTTP/1.1, so the config should offer "http/1.1" in NextProtos.
	TLS *tls.Config
	// IsRemoved reports whether a member was removed from the cluster: its
	// streams are refused with 410 Gone, which tells it to stop (etcd's
	// behaviour). Nil: nobody is.
	IsRemoved func(id uint64) bool
	// Removed is called when a peer refuses this member with 410 Gone:
	// this member was removed from the cluster.
	Removed func()
	// Snapshots ships and receives state images for MsgSnap; without it
	// a MsgSnap travels bare on the msgapp stream (tests).
	Snapshots Snapshots
	// LocalAddr, if set, is the IP address every connection to a peer
	// (streams, snapshots, Do) is dialed from (SetMemberLocalAddr, see
	// LocalAddr); empty lets the kernel choose.
	LocalAddr string
}

// Stats are cumulative counters, mainly for tests and debugging.
type Stats struct {
	SentMessages, SentBytes         uint64
	ReceivedMessages, ReceivedBytes uint64
	// DroppedMessages were never written: queue full, peer unknown or
	// unreachable, or encoding failed.
	DroppedMessages uint64
	// CorruptFrames failed their checksum or could not be decoded.
	CorruptFrames uint64
	// RejectedStreams were refused (wrong cluster, addressee or version).
	RejectedStreams uint64
	// RejectedMessages arrived on a valid stream but claimed another sender
	// or addressee.
	RejectedMessages uint64
}

// Header names and paths of the peer protocol.
const (
	HeaderClusterID = "X-Metastore-Cluster-Id"
	HeaderFrom      = "X-Metastore-From"
	HeaderTo        = "X-Metastore-To"
	HeaderVersion   = "X-Metastore-Peer-Version"

	// PathPrefix is where Handler serves; the lead mounts it there.
	PathPrefix = peerapi.Prefix

	pathMsgApp  = peerapi.PathStreamMsgApp
	pathMessage = peerapi.PathStreamMessage

	protocolVersion = "1"
)

// ErrStopped is returned by calls on a stopped Transport.
var ErrStopped = errors.New("transport: stopped")

// Transport sends raft messages to peers and receives theirs.
type Transport struct {
	cfg       Config
	lg        *zap.Logger
	clusterID atomic.Uint64

	raftMu    sync.Mutex // serialises SetRaft; raft is read without it
	raft      atomic.Pointer[raftBox]
	raftReady chan struct{} // closed by the first SetRaft

	ctx    context.Context // canceled by Stop
	cancel context.CancelFunc
	// epoch is when the transport was created, with its monotonic clock
	// reading: a peer's activeSince is kept as an offset from it, so that a
	// step of the wall clock cannot make a peer look reachable for longer
	// or shorter than it was (the reconfiguration checks compare it with
	// now minus HealthInterval).
	epoch time.Time
	rt    *http.Transport
	mux   *http.ServeMux

	snapMu sync.Mutex // one inbound snapshot at a time

	mu      sync.RWMutex // guards peers and stopped
	peers   map[uint64]*peer
	stopped bool
	inbound sync.WaitGroup // handlers of inbound streams

	stopOnce sync.Once

	sentMsgs, sentBytes, recvMsgs, recvBytes atomic.Uint64
	dropped, corrupt, rejStreams, rejMsgs    atomic.Uint64
}

type raftBox struct{ r Raft }

// New creates a Transport; it starts no goroutine until a peer is added.
func New(cfg Config) *Transport {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = time.Second
	}
	if cfg.AcceptTimeout <= 0 {
		cfg.AcceptTimeout = 3 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.MaxFrameSize <= 0 {
		cfg.MaxFrameSize = 128 << 20
	}
	t := &Transport{
		epoch:     time.Now(),
		cfg:       cfg,
		lg:        cfg.Logger.With(zap.String("local-member-id", idString(cfg.LocalID))),
		raftReady: make(chan struct{}),
		mux:       http.NewServeMux(),
		peers:     map[uint64]*peer{},
	}
	t.clusterID.Store(cfg.ClusterID)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second, LocalAddr: LocalTCPAddr(cfg.LocalAddr)}
	t.rt = &http.Transport{
		Proxy: nil, // peers are reached directly, whatever the environment says
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &deadlineConn{Conn: c, timeout: cfg.WriteTimeout}, nil
		},
		TLSClientConfig:     cfg.TLS,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	t.mux.HandleFunc(pathMsgApp, t.serveStream)
	t.mux.HandleFunc(pathMessage, t.serveStream)
	t.mux.HandleFunc(pathSnapshot, t.serveSnapshot)
	if cfg.Raft != nil {
		t.SetRaft(cfg.Raft)
	}
	return t
}

// SetRaft sets the member messages are delivered to; inbound streams wait
// for it. Only the first call has an effect.
func (t *Transport) SetRaft(r Raft) {
	t.raftMu.Lock()
	defer t.raftMu.Unlock()
	if t.raft.Load() != nil {
		return
	}
	t.raft.Store(&raftBox{r: r})
	close(t.raftReady)
}

// SetClusterID changes the cluster ID sent and checked, for a member that
// learns it after starting (joining an existing cluster).
func (t *Transport) SetClusterID(id uint64) { t.clusterID.Store(id) }

func (t *Transport) reportUnreachable(id uint64) {
	if b := t.raft.Load(); b != nil {
		b.r.ReportUnreachable(id)
	}
}

func (t *Transport) reportSnapshot(id uint64, st raft.SnapshotStatus) {
	if b := t.raft.Load(); b != nil {
		b.r.ReportSnapshot(id, st)
	}
}

// ValidatePeerURLs checks that urls can be used to reach a peer without TLS.
func ValidatePeerURLs(urls []string) error {
	_, err := normalizeURLs(urls, false)
	return err
}

func normalizeURLs(urls []string, tlsOK bool) ([]string, error) {
	if len(urls) == 0 {
		return nil, errors.New("transport: no peer URL")
	}
	out := make([]string, 0, len(urls))
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("transport: peer URL %q: %w", s, err)
		}
		switch u.Scheme {
		case "http":
		case "https":
			if !tlsOK {
				return nil, fmt.Errorf("transport: peer URL %q: https needs peer TLS settings (--peer-cert-file, --peer-key-file, --peer-trusted-ca-file or --peer-auto-tls)", s)
			}
		default:
			return nil, fmt.Errorf("transport: peer URL %q: scheme must be http or https", s)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("transport: peer URL %q: no host", s)
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("transport: peer URL %q: must be scheme://host:port only", s)
		}
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return out, nil
}

// AddPeer starts sending to member id at urls. Adding a known peer
// updates its URLs.
func (t *Transport) AddPeer(id uint64, urls []string) error {
	if id == t.cfg.LocalID || id == 0 {
		return fmt.Errorf("transport: cannot add member %s as a peer of %s", idString(id), idString(t.cfg.LocalID))
	}
	norm, err := normalizeURLs(urls, t.cfg.TLS != nil)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return ErrStopped
	}
	if p := t.peers[id]; p != nil {
		if !slices.Equal(p.getURLs(), norm) {
			p.setURLs(norm) // resets its streams: only when they moved
		}
		return nil
	}
	p := newPeer(t, id, norm)
	t.peers[id] = p
	p.start()
	t.lg.Info("added peer", zap.String("peer-id", idString(id)), zap.Strings("peer-urls", norm))
	return nil
}

// UpdatePeer changes the URLs of a known peer; its streams reconnect.
func (t *Transport) UpdatePeer(id uint64, urls []string) error {
	norm, err := normalizeURLs(urls, t.cfg.TLS != nil)
	if err != nil {
		return err
	}
	t.mu.RLock()
	p := t.peers[id]
	t.mu.RUnlock()
	if p == nil {
		return fmt.Errorf("transport: update unknown peer %s", idString(id))
	}
	p.setURLs(norm)
	t.lg.Info("updated peer", zap.String("peer-id", idString(id)), zap.Strings("peer-urls", norm))
	return nil
}

// RemovePeer stops sending to id and waits for its goroutines to exit.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.stop()
		t.lg.Info("removed peer", zap.String("peer-id", idString(id)))
	}
}

// ActiveSince returns when peer id last became reachable, or the zero time
// if it is not reachable now (etcd's ActiveSince).
func (t *Transport) ActiveSince(id uint64) time.Time {
	t.mu.RLock()
	p := t.peers[id]
	t.mu.RUnlock()
	if p == nil {
		return time.Time{}
	}
	return p.activeSinceTime()
}

// Peers returns the IDs of the known peers.
func (t *Transport) Peers() []uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]uint64, 0, len(t.peers))
	for id := range t.peers {
		out = append(out, id)
	}
	return out
}

// PeerURLs returns the URLs of peer id, or nil if it is unknown.
func (t *Transport) PeerURLs(id uint64) []string {
	t.mu.RLock()
	p := t.peers[id]
	t.mu.RUnlock()
	if p == nil {
		return nil
	}
	return p.getURLs()
}

// IsActive reports whether a stream to peer id is currently established.
func (t *Transport) IsActive(id uint64) bool {
	t.mu.RLock()
	p := t.peers[id]
	t.mu.RUnlock()
	return p != nil && p.active.Load() > 0
}

// Send queues msgs for their addressees and returns at once: it never
// blocks, whatever the state of the peers.
func (t *Transport) Send(msgs []*raftpb.Message) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, m := range msgs {
		to := m.GetTo()
		if to == t.cfg.LocalID {
			continue
		}
		p := t.peers[to]
		if p == nil {
			t.drop(to, 1)
			t.lg.Debug("dropped message to unknown peer", zap.String("peer-id", idString(to)), zap.Stringer("type", m.GetType()))
			continue
		}
		p.send(m)
	}
}

func (t *Transport) drop(to uint64, n int) {
	t.dropped.Add(uint64(n))
	if f := t.cfg.Metrics.SendFailed; f != nil {
		f(to, n)
	}
}

// Stats returns the transport's cumulative counters.
func (t *Transport) Stats() Stats {
	return Stats{
		SentMessages:     t.sentMsgs.Load(),
		SentBytes:        t.sentBytes.Load(),
		ReceivedMessages: t.recvMsgs.Load(),
		ReceivedBytes:    t.recvBytes.Load(),
		DroppedMessages:  t.dropped.Load(),
		CorruptFrames:    t.corrupt.Load(),
		RejectedStreams:  t.rejStreams.Load(),
		RejectedMessages: t.rejMsgs.Load(),
	}
}

// Stop closes every stream, inbound and outbound, and waits for the
// transport's goroutines and inbound handlers to return. The Transport
// cannot be restarted.
func (t *Transport) Stop() {
	t.stopOnce.Do(func() {
		t.mu.Lock()
		t.stopped = true
		peers := t.peers
		t.peers = map[uint64]*peer{}
		t.mu.Unlock()
		t.cancel() // unblocks inbound handlers (see serveStream)
		for _, p := range peers {
			p.stop()
		}
		t.inbound.Wait()
		t.rt.CloseIdleConnections()
	})
}

// HandleFunc registers h on the peer mux at path, which must be under
// PathPrefix. Requests whose cluster ID header is present and differs are
// rejected before reaching h; RequestFrom tells h who called.
func (t *Transport) HandleFunc(path string, h http.HandlerFunc) {
	if !strings.HasPrefix(path, PathPrefix) || path == pathMsgApp || path == pathMessage || path == pathSnapshot {
		panic(fmt.Sprintf("transport: HandleFunc path %q must be under %s and not a stream path", path, PathPrefix))
	}
	t.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		if cid := r.Header.Get(HeaderClusterID); cid != "" && cid != idString(t.clusterID.Load()) {
			t.rejectCluster(w, r, cid)
			return
		}
		h(w, r)
	})
}

// RequestFrom returns the member ID a peer request says it comes from, or 0.
func RequestFrom(r *http.Request) uint64 {
	id, err := strconv.ParseUint(r.Header.Get(HeaderFrom), 16, 64)
	if err != nil {
		return 0
	}
	return id
}

// Do sends one request to peer id, trying its URLs in turn until one
// answers, with the peer protocol headers set. The caller closes the
// response body. path must be under PathPrefix.
func (t *Transport) Do(ctx context.Context, id uint64, method, path string, body []byte) (*http.Response, error) {
	urls := t.PeerURLs(id)
	if len(urls) == 0 {
		return nil, fmt.Errorf("transport: unknown peer %s", idString(id))
	}
	var errs []error
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, method, u+path, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("transport: request to peer %s: %w", idString(id), err)
		}
		t.setHeaders(req.Header, id)
		resp, err := t.rt.RoundTrip(req)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("transport: request to peer %s: %w", idString(id), errors.Join(errs...))
}

func (t *Transport) setHeaders(h http.Header, to uint64) {
	h.Set(HeaderClusterID, idString(t.clusterID.Load()))
	h.Set(HeaderFrom, idString(t.cfg.LocalID))
	h.Set(HeaderTo, idString(to))
	h.Set(HeaderVersion, protocolVersion)
}

// idString formats a member ID the way etcd prints them.
func idString(id uint64) string { return strconv.FormatUint(id, 16) }

// deadlineConn bounds each write, so a peer that stopped reading cannot
// hold a stream writer forever.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
