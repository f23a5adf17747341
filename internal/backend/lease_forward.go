package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/peerapi"
)

// Only the leader times leases, so a keep-alive or TimeToLive that reaches
// a follower is forwarded to the leader over the peer transport, as etcd
// forwards them over its peer URLs. Without this a client connected to a
// follower could not keep its leases (and so its locks) alive.

// PeerCaller sends a request to another member's peer listener.
type PeerCaller interface {
	Do(ctx context.Context, id uint64, method, path string, body []byte) (*http.Response, error)
}

// Paths of the forwarded calls on the peer listener.
const (
	PathLeaseRenew      = peerapi.PathLeaseRenew
	PathLeaseTimeToLive = peerapi.PathLeaseTimeToLive
)

const maxForwardBody = 64 << 20

// forward sends req to the leader at path and decodes its answer into resp.
// A 404 means the leader does not know the lease.
func (b *Backend) forward(ctx context.Context, path string, req, resp proto.Message) error {
	lead := b.cfg.Node.Leader()
	if lead == 0 || b.cfg.Peers == nil {
		return ErrNoLeader
	}
	body, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("backend: encode forwarded request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	hr, err := b.cfg.Peers.Do(ctx, lead, http.MethodPost, path, body)
	if err != nil {
		return b.ctxErr(ctx, fmt.Errorf("backend: forward to leader %x: %w", lead, err))
	}
	defer hr.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hr.Body, maxForwardBody))
	if err != nil {
		return fmt.Errorf("backend: read leader's answer: %w", err)
	}
	switch hr.StatusCode {
	case http.StatusOK:
		if err := proto.Unmarshal(data, resp); err != nil {
			return fmt.Errorf("backend: decode leader's answer: %w", err)
		}
		return nil
	case http.StatusNotFound:
		return lease.ErrLeaseNotFound
	case http.StatusServiceUnavailable:
		return lease.ErrNotPrimary // leadership moved on; the client retries
	}
	return fmt.Errorf("backend: leader answered %d: %s", hr.StatusCode, data)
}

// LeaseHandlers returns the peer-listener handlers that serve forwarded
// lease calls on the leader.
func (b *Backend) LeaseHandlers() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		PathLeaseRenew: b.serveForwarded(func(ctx context.Context, body []byte) (proto.Message, error) {
			var r pb.LeaseKeepAliveRequest
			if err := proto.Unmarshal(body, &r); err != nil {
				return nil, err
			}
			if !b.cfg.Node.IsLeader() {
				return nil, lease.ErrNotPrimary
			}
			ttl, err := b.LeaseRenew(ctx, r.ID)
			if err != nil {
				return nil, err
			}
			return &pb.LeaseKeepAliveResponse{ID: r.ID, TTL: ttl}, nil
		}),
		PathLeaseTimeToLive: b.serveForwarded(func(ctx context.Context, body []byte) (proto.Message, error) {
			var r pb.LeaseTimeToLiveRequest
			if err := proto.Unmarshal(body, &r); err != nil {
				return nil, err
			}
			if !b.cfg.Node.IsLeader() {
				return nil, lease.ErrNotPrimary
			}
			return b.LeaseTimeToLive(ctx, &r)
		}),
	}
}

func (b *Backend) serveForwarded(fn func(ctx context.Context, body []byte) (proto.Message, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxForwardBody))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := fn(r.Context(), body)
		switch {
		case errors.Is(err, lease.ErrLeaseNotFound):
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		case errors.Is(err, lease.ErrNotPrimary):
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		data, err := proto.Marshal(resp)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/protobuf")
		_, _ = w.Write(data)
	}
}
