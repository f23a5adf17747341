package corruption

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/peerapi"
	"github.com/metastore/metastore/internal/transport"
)

// peerServer is one peer's listener: a real transport with the HashKV
// route, answering from hashByRev, in cluster clusterID.
func peerServer(t *testing.T, clusterID uint64, hashByRev func(context.Context, int64) (Hash, error)) string {
	t.Helper()
	tr := transport.New(transport.Config{LocalID: 99, ClusterID: clusterID})
	t.Cleanup(tr.Stop)
	tr.HandleFunc(peerapi.PathHashKV, ServeHashKV(hashByRev))
	srv := httptest.NewServer(tr.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// httpHasher is the member that starts: its own hash is local; its peers
// are reached over HTTP at their URLs, as the server does at start.
type httpHasher struct {
	local  Hash
	peers  []Peer
	caller URLCaller
}

func (h *httpHasher) Self() uint64                                   { return 1 }
func (h *httpHasher) Rev() int64                                     { return h.local.HashRevision }
func (h *httpHasher) Peers() []Peer                                  { return h.peers }
func (h *httpHasher) LocalHash(context.Context, int64) (Hash, error) { return h.local, nil }
func (h *httpHasher) PeerHash(ctx context.Context, p Peer, rev int64) (Hash, error) {
	return FetchPeerHash(ctx, h.caller, p.ID, rev)
}

func newHTTPHasher(local Hash, lg *zap.Logger, peerURLs ...string) *httpHasher {
	h := &httpHasher{local: local}
	urls := map[uint64][]string{}
	for i, u := range peerURLs {
		id := uint64(i + 2)
		if i%2 == 1 {
			u += "/" // a peer URL may be written with a trailing slash
		}
		h.peers = append(h.peers, Peer{ID: id, PeerURLs: []string{u}})
		urls[id] = []string{u}
	}
	hdr := http.Header{}
	hdr.Set(transport.HeaderClusterID, strconv.FormatUint(7, 16))
	h.caller = URLCaller{Client: &http.Client{}, Header: hdr, URLs: func(id uint64) []string { return urls[id] }, Logger: lg}
	return h
}

func fixed(h Hash, err error) func(context.Context, int64) (Hash, error) {
	return func(_ context.Context, rev int64) (Hash, error) {
		if err != nil {
			return Hash{}, err
		}
		h.HashRevision = rev
		return h, nil
	}
}

// TestInitialCheck runs the check against peers served over HTTP by the
// real transport and HashKV route: a peer with another hash over the same
// compacted window fails the start with etcd's error; peers that cannot be
// compared are logged with etcd's reasons and skipped.
func TestInitialCheck(t *testing.T) {
	local := Hash{Hash: 10, CompactRevision: 3, HashRevision: 20}
	unreachable := httptest.NewServer(http.NotFoundHandler())
	unreachable.Close()

	for _, tc := range []struct {
		name    string
		peers   []string
		wantErr bool
		logs    []string
	}{
		{"all agree", []string{
			peerServer(t, 7, fixed(Hash{Hash: 10, CompactRevision: 3}, nil)),
			peerServer(t, 7, fixed(Hash{Hash: 10, CompactRevision: 3}, nil)),
		}, false, []string{"initial corruption checking passed; no corruption"}},
		{"one differs", []string{
			peerServer(t, 7, fixed(Hash{Hash: 10, CompactRevision: 3}, nil)),
			peerServer(t, 7, fixed(Hash{Hash: 11, CompactRevision: 3}, nil)),
		}, true, []string{"found different hash values from remote peer"}},
		{"other compacted window", []string{
			peerServer(t, 7, fixed(Hash{Hash: 11, CompactRevision: 5}, nil)),
		}, false, []string{"found different compact revision values from remote peer", "initial corruption checking passed; no corruption"}},
		{"peers that cannot answer", []string{
			peerServer(t, 7, fixed(Hash{}, fmt.Errorf("hash: %w", mvcc.ErrFutureRev))),
			peerServer(t, 7, fixed(Hash{}, mvcc.ErrCompacted)),
			peerServer(t, 8, fixed(Hash{Hash: 11, CompactRevision: 3}, nil)),
			unreachable.URL,
		}, false, []string{
			"cannot fetch hash from slow remote peer",
			"cannot fetch hash from remote peer; local member is behind",
			"cluster ID mismatch",
			"failed hash kv request",
			"cannot fetch hash from remote peer; skipping it",
			"initial corruption checking passed; no corruption",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			lg := zap.New(core)
			err := InitialCheck(context.Background(), newHTTPHasher(local, lg, tc.peers...), 5*time.Second, lg)
			if tc.wantErr {
				if err == nil || err.Error() != "1 found data inconsistency with peers" {
					t.Fatalf("err = %v, want etcd's \"1 found data inconsistency with peers\"", err)
				}
			} else if err != nil {
				t.Fatalf("err = %v, want the start allowed", err)
			}
			var msgs []string
			for _, e := range logs.All() {
				msgs = append(msgs, e.Message)
			}
			got := strings.Join(msgs, "\n")
			for _, want := range tc.logs {
				if !strings.Contains(got, want) {
					t.Errorf("log %q lacks %q", msgs, want)
				}
			}
		})
	}
}

// TestInitialCheckLocalHashFails reports etcd's error when the member
// cannot hash its own data.
func TestInitialCheckLocalHashFails(t *testing.T) {
	h := &failingHasher{}
	err := InitialCheck(context.Background(), h, time.Second, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "1 failed to fetch hash (") || !errors.Is(err, errDisk) {
		t.Fatalf("err = %v, want etcd's failed to fetch hash wrapping the cause", err)
	}
}

var errDisk = errors.New("disk on fire")

type failingHasher struct{ httpHasher }

func (*failingHasher) LocalHash(context.Context, int64) (Hash, error) { return Hash{}, errDisk }
