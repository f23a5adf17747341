package downgrade

import (
	"context"
	"io"
	"net/http"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"

	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/peerapi"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/version"
)

// A member's side of downgrades: its Raft through the request path, the
// Cluster the monitor watches, the version it tells its peers, and the
// downgrade state its Status answers carry.

// Proposer is the member's request path (internal/backend).
type Proposer interface {
	LinearizableBarrier(ctx context.Context) error
	// Propose replicates r and returns the error its application gave.
	Propose(ctx context.Context, r *pb.InternalRaftRequest) error
}

// ViaProposer is Raft through p.
func ViaProposer(p Proposer) Raft { return proposerRaft{p} }

type proposerRaft struct{ Proposer }

func (p proposerRaft) ProposeDowngrade(ctx context.Context, r *membershippb.DowngradeInfoSetRequest) error {
	return p.Propose(ctx, &pb.InternalRaftRequest{DowngradeInfoSet: r})
}

// Peers calls a peer's listener (internal/transport).
type Peers interface {
	Do(ctx context.Context, id uint64, method, path string, body []byte) (*http.Response, error)
}

// MemberConfig wires the Cluster one member's monitor watches.
type MemberConfig struct {
	Self uint64
	// IsLeader reports whether this member leads.
	IsLeader func() bool
	// State holds the replicated downgrade state.
	State storage.Reader
	// Members is the replicated member list, this member included.
	Members  interface{ Members() []*membership.Member }
	Peers    Peers
	Proposer Proposer
}

// NewMemberCluster returns the Cluster of one member: its peers tell their
// versions over the peer listener (peerapi.PathVersion, ServeVersion).
func NewMemberCluster(c MemberConfig) Cluster { return memberCluster{c} }

type memberCluster struct{ c MemberConfig }

func (m memberCluster) IsLeader() bool       { return m.c.IsLeader() }
func (m memberCluster) State() (Info, error) { return Load(m.c.State) }

func (m memberCluster) Finish(ctx context.Context) error {
	return ViaProposer(m.c.Proposer).ProposeDowngrade(ctx, &membershippb.DowngradeInfoSetRequest{Enabled: false})
}

// MemberVersions asks every other member for its server version.
func (m memberCluster) MemberVersions(ctx context.Context) (map[uint64]string, bool) {
	out := map[uint64]string{}
	for _, mb := range m.c.Members.Members() {
		id := mb.ID
		if id == m.c.Self {
			out[id] = version.EtcdAPIVersion
			continue
		}
		resp, err := m.c.Peers.Do(ctx, id, http.MethodGet, peerapi.PathVersion, nil)
		if err != nil {
			return nil, false
		}
		v, err := io.ReadAll(io.LimitReader(resp.Body, 64))
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, false
		}
		out[id] = string(v)
	}
	return out, true
}

// ServeVersion tells a peer this member's server version
// (peerapi.PathVersion), for the leader's MemberVersions.
func ServeVersion(w http.ResponseWriter, _ *http.Request) {
	_, _ = io.WriteString(w, version.EtcdAPIVersion)
}

// WithStatusInfo adds the replicated downgrade state read from state to
// the Status answers of ms, as etcd's downgradeInfo.
func WithStatusInfo(ms pb.MaintenanceServer, state storage.Reader) pb.MaintenanceServer {
	return statusInfo{ms, state}
}

type statusInfo struct {
	pb.MaintenanceServer
	state storage.Reader
}

func (s statusInfo) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	resp, err := s.MaintenanceServer.Status(ctx, r)
	if err == nil {
		resp.DowngradeInfo = StatusInfo(s.state)
	}
	return resp, err
}
