package server

import (
	"context"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/rpc"
	"github.com/metastore/metastore/internal/version"
)

// The Server answers the small questions the services and HTTP endpoints
// ask about the member; each answer only reads the owning component.

// ClusterID implements rpc.HeaderSource.
func (s *Server) ClusterID() uint64 { return s.members.ClusterID() }

// MemberID implements rpc.HeaderSource.
func (s *Server) MemberID() uint64 { return s.memberID }

// Term implements rpc.HeaderSource.
func (s *Server) Term() uint64 { return s.node.Term() }

// Rev implements rpc.HeaderSource.
func (s *Server) Rev() int64 { return s.store.Rev() }

// Members implements rpc.ClusterBackend.
func (s *Server) Members() []*membership.Member { return s.members.Members() }

// LinearizableBarrier implements rpc.ClusterBackend.
func (s *Server) LinearizableBarrier(ctx context.Context) error {
	return s.backend.LinearizableBarrier(ctx)
}

// MemberStatus implements rpc.MaintenanceBackend.
func (s *Server) MemberStatus(context.Context) (rpc.MemberStatus, error) {
	u := s.eng.Usage()
	st := rpc.MemberStatus{
		Version:          version.EtcdAPIVersion,
		StorageVersion:   version.StorageVersion,
		DBSize:           u.SizeBytes,
		DBSizeInUse:      u.LiveBytes,
		DBSizeQuota:      s.cfg.Quota.EffectiveBackendBytes(),
		Leader:           s.node.Leader(),
		RaftIndex:        s.raftLog.HardState().GetCommit(),
		RaftTerm:         s.node.Term(),
		RaftAppliedIndex: s.applier.AppliedIndex(),
	}
	if m := s.members.Member(s.memberID); m != nil {
		st.IsLearner = m.IsLearner
	}
	if st.Leader == 0 {
		st.Errors = append(st.Errors, "etcdserver: no leader")
	}
	for _, a := range s.alarms.Get(pb.AlarmType_NONE) {
		st.Errors = append(st.Errors, fmt.Sprintf("memberID:%d alarm:%s ", a.MemberID, a.Alarm))
	}
	return st, nil
}

// Hash implements rpc.MaintenanceBackend.
func (s *Server) Hash(context.Context) (uint32, error) { return s.store.Hash() }

// HashKV implements rpc.MaintenanceBackend.
func (s *Server) HashKV(_ context.Context, rev int64) (uint32, int64, int64, error) {
	h, err := s.store.HashByRev(rev)
	if err != nil {
		return 0, 0, 0, err
	}
	return h.Hash, h.CompactRevision, h.HashRevision, nil
}

// Alarm implements rpc.MaintenanceBackend: every action goes through Raft,
// as in etcd, so alarms are identical on every member.
func (s *Server) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	res, err := s.backend.Propose(ctx, &pb.InternalRaftRequest{Alarm: r})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Resp.(*pb.AlarmResponse), nil
}

// MoveLeader implements rpc.MaintenanceBackend.
func (s *Server) MoveLeader(ctx context.Context, target uint64) error {
	return s.leadership.MoveLeader(ctx, target)
}

// HasLeader implements httpapi.Probe.
func (s *Server) HasLeader() bool { return s.node.Leader() != 0 }

// Alarms implements httpapi.Probe.
func (s *Server) Alarms() []string {
	var out []string
	for _, a := range s.alarms.Get(pb.AlarmType_NONE) {
		out = append(out, a.Alarm.String())
	}
	return out
}

// IsLearner implements httpapi.Probe.
func (s *Server) IsLearner() bool { return s.members.IsLearner(s.memberID) }

// Read implements httpapi.Probe: the one-key read etcd's health check does.
func (s *Server) Read(ctx context.Context, serializable bool) error {
	// Like etcd's, the health read runs as root when auth is enabled.
	_, err := s.backend.Range(auth.WithRoot(ctx), &pb.RangeRequest{Key: []byte("health"), Limit: 1, Serializable: serializable})
	return err
}
