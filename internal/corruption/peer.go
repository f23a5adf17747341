package corruption

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"

	"github.com/metastore/metastore/internal/peerapi"
)

// The leader asks each member for its HashKV over the peer transport
// (peerapi.PathHashKV), which needs no client credentials even when auth
// is on, and uses the peer TLS settings. The request is an 8-byte
// big-endian revision; the answer is the hash (4 bytes), the compact
// revision and the hash revision (8 bytes each), big-endian.

// ServeHashKV answers a peer's hash request from hashByRev.
func ServeHashKV(hashByRev func(rev int64) (Hash, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 8))
		if err != nil || len(body) != 8 {
			http.Error(w, "want an 8-byte revision", http.StatusBadRequest)
			return
		}
		h, err := hashByRev(int64(binary.BigEndian.Uint64(body)))
		if err != nil {
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
	if err != nil || resp.StatusCode != http.StatusOK || len(data) != 20 {
		return Hash{}, fmt.Errorf("%w: status %d: %s", ErrSkip, resp.StatusCode, data)
	}
	return Hash{
		Hash:            binary.BigEndian.Uint32(data),
		CompactRevision: int64(binary.BigEndian.Uint64(data[4:])),
		HashRevision:    int64(binary.BigEndian.Uint64(data[12:])),
	}, nil
}
