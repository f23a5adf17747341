package corruption

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/peerapi"
)

// The leader asks each member for its HashKV over the peer transport
// (peerapi.PathHashKV), which needs no client credentials even when auth
// is on, and uses the peer TLS settings. The request is an 8-byte
// big-endian revision; the answer is the hash (4 bytes), the compact
// revision and the hash revision (8 bytes each), big-endian.

//
// A revision the member cannot hash is answered with a status that says
// why, so that the asking member can log it as etcd does: 425 (Too Early)
// for a revision it has not reached, 410 (Gone) for a compacted one, 409
// for any other failure.

// Why a peer's hash could not be compared, each wrapped with ErrSkip.
var (
	// ErrPeerBehind: the peer has not reached the revision (etcd's
	// ErrFutureRev: a slow peer).
	ErrPeerBehind = errors.New("the peer has not reached the revision")
	// ErrPeerCompacted: the peer compacted the revision away (etcd's
	// ErrCompacted: the asking member is behind).
	ErrPeerCompacted = errors.New("the peer compacted the revision")
	// ErrClusterIDMismatch: the peer belongs to another cluster.
	ErrClusterIDMismatch = errors.New("cluster ID mismatch")
)

// ServeHashKV answers a peer's hash request from hashByRev.
func ServeHashKV(hashByRev func(ctx context.Context, rev int64) (Hash, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 8))
		if err != nil || len(body) != 8 {
			http.Error(w, "want an 8-byte revision", http.StatusBadRequest)
			return
		}
		h, err := hashByRev(r.Context(), int64(binary.BigEndian.Uint64(body)))
		switch {
		case errors.Is(err, mvcc.ErrFutureRev):
			http.Error(w, err.Error(), http.StatusTooEarly)
			return
		case errors.Is(err, mvcc.ErrCompacted):
			http.Error(w, err.Error(), http.StatusGone)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		out := make([]byte, 0, 20)
		out = binary.BigEndian.AppendUint32(out, h.Hash)
		out = binary.BigEndian.AppendUint64(out, uint64(h.CompactRevision))
		out = binary.BigEndian.AppendUint64(out, uint64(h.HashRevision))
		_, _ = w.Write(out)
	}
}

// PeerCaller sends a request to another member's peer listener.
type PeerCaller interface {
	Do(ctx context.Context, id uint64, method, path string, body []byte) (*http.Response, error)
}

// FetchPeerHash asks member id for its hash at rev. A peer that cannot
// answer is skipped this round (ErrSkip).
func FetchPeerHash(ctx context.Context, peers PeerCaller, id uint64, rev int64) (Hash, error) {
	body := binary.BigEndian.AppendUint64(nil, uint64(rev))
	resp, err := peers.Do(ctx, id, http.MethodPost, peerapi.PathHashKV, body)
	if err != nil {
		return Hash{}, fmt.Errorf("%w: %v", ErrSkip, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if err == nil && resp.StatusCode == http.StatusOK && len(data) == 20 {
		return Hash{
			Hash:            binary.BigEndian.Uint32(data),
			CompactRevision: int64(binary.BigEndian.Uint64(data[4:])),
			HashRevision:    int64(binary.BigEndian.Uint64(data[12:])),
		}, nil
	}
	text := bytes.TrimSpace(data)
	switch resp.StatusCode {
	case http.StatusTooEarly:
		return Hash{}, fmt.Errorf("%w: %w: %s", ErrSkip, ErrPeerBehind, text)
	case http.StatusGone:
		return Hash{}, fmt.Errorf("%w: %w: %s", ErrSkip, ErrPeerCompacted, text)
	case http.StatusPreconditionFailed:
		// The transport refuses a request from another cluster so
		// (internal/transport rejectCluster).
		return Hash{}, fmt.Errorf("%w: %w: %s", ErrSkip, ErrClusterIDMismatch, text)
	}
	return Hash{}, fmt.Errorf("%w: status %d: %s", ErrSkip, resp.StatusCode, text)
}

// URLCaller sends peer requests straight to a member's peer URLs, trying
// them in turn, with the peer protocol headers in Header. The check at
// start runs before the member's transport, which does this for the
// running member, exists.
type URLCaller struct {
	Client *http.Client
	Header http.Header
	// URLs are a member's peer URLs ("https://host:port").
	URLs   func(id uint64) []string
	Logger *zap.Logger
}

// Do sends one request to member id; each URL that fails is logged as
// etcd logs a failed hash request, and the last error is returned.
func (c URLCaller) Do(ctx context.Context, id uint64, method, path string, body []byte) (*http.Response, error) {
	urls := c.URLs(id)
	if len(urls) == 0 {
		return nil, fmt.Errorf("member %s has no peer URL", idHex(id))
	}
	var lastErr error
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(u, "/")+path, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("request to member %s: %w", idHex(id), err)
		}
		for k, v := range c.Header {
			req.Header[k] = v
		}
		resp, err := c.Client.Do(req)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		c.Logger.Warn("failed hash kv request", zap.String("remote-peer-id", idHex(id)),
			zap.String("remote-peer-endpoint", u), zap.Error(err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("request to member %s: %w", idHex(id), lastErr)
}
