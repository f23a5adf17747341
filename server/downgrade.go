package server

import (
	"context"
	"io"
	"net/http"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"

	"github.com/metastore/metastore/internal/downgrade"
	"github.com/metastore/metastore/internal/peerapi"
	"github.com/metastore/metastore/internal/version"
)

// Downgrade implements rpc.Downgrader (internal/downgrade).
func (s *Server) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	svc := downgrade.Service{ClusterVersion: version.ClusterVersion, State: s.eng, Raft: downgradeRaft{s}, Logger: s.lg}
	return svc.Downgrade(ctx, r)
}

type downgradeRaft struct{ s *Server }

func (d downgradeRaft) LinearizableBarrier(ctx context.Context) error {
	return d.s.backend.LinearizableBarrier(ctx)
}

func (d downgradeRaft) ProposeDowngrade(ctx context.Context, r *membershippb.DowngradeInfoSetRequest) error {
	res, err := d.s.backend.Propose(ctx, &pb.InternalRaftRequest{DowngradeInfoSet: r})
	if err != nil {
		return err
	}
	return res.Err
}

// downgradeStatus adds the replicated downgrade state to Status answers,
// as etcd's downgradeInfo.
type downgradeStatus struct {
	pb.MaintenanceServer
	s *Server
}

func (d downgradeStatus) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	resp, err := d.MaintenanceServer.Status(ctx, r)
	if err == nil {
		resp.DowngradeInfo = downgrade.StatusInfo(d.s.eng)
	}
	return resp, err
}

// serveVersion tells a peer this member's server version (peerapi.PathVersion),
// for the leader's downgrade check.
func (s *Server) serveVersion(w http.ResponseWriter, _ *http.Request) {
	_, _ = io.WriteString(w, version.EtcdAPIVersion)
}

// startDowngradeMonitor runs etcd's --downgrade-check-time loop.
func (s *Server) startDowngradeMonitor() {
	lg := s.lg.Named("downgrade")
	s.superviseEvery("downgrade-monitor", s.cfg.Ops.DowngradeCheckTime, func(ctx context.Context, tick <-chan time.Time) {
		downgrade.Monitor(ctx, tick, downgradeCluster{s}, lg)
	})
}

// superviseEvery runs loop under the supervisor with a ticker of period d;
// d <= 0 turns the loop off.
func (s *Server) superviseEvery(name string, d time.Duration, loop func(ctx context.Context, tick <-chan time.Time)) {
	if d <= 0 {
		return
	}
	s.rel.supervisor.Go(name, func(ctx context.Context) {
		t := time.NewTicker(d)
		defer t.Stop()
		loop(ctx, t.C)
	})
}

type downgradeCluster struct{ s *Server }

func (c downgradeCluster) IsLeader() bool                 { return c.s.node.IsLeader() }
func (c downgradeCluster) State() (downgrade.Info, error) { return downgrade.Load(c.s.eng) }

func (c downgradeCluster) MemberVersions(ctx context.Context) (map[uint64]string, bool) {
	out := map[uint64]string{}
	for _, m := range c.s.members.Members() {
		if m.ID == c.s.memberID {
			out[m.ID] = version.EtcdAPIVersion
			continue
		}
		resp, err := c.s.transport.Do(ctx, m.ID, http.MethodGet, peerapi.PathVersion, nil)
		if err != nil {
			return nil, false
		}
		v, err := io.ReadAll(io.LimitReader(resp.Body, 64))
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, false
		}
		out[m.ID] = string(v)
	}
	return out, true
}

func (c downgradeCluster) Finish(ctx context.Context) error {
	return downgradeRaft(c).ProposeDowngrade(ctx, &membershippb.DowngradeInfoSetRequest{Enabled: false})
}
