package rpc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/membership"
)

// ClusterBackend is what the Cluster service needs.
type ClusterBackend interface {
	Members() []*membership.Member
	// LinearizableBarrier is used when MemberList asks for linearizable.
	LinearizableBarrier(ctx context.Context) error
}

type clusterServer struct {
	pb.UnimplementedClusterServer
	b   ClusterBackend
	hdr HeaderSource
}

// NewClusterServer returns etcd's Cluster service.
func NewClusterServer(b ClusterBackend, hdr HeaderSource) pb.ClusterServer {
	return &clusterServer{b: b, hdr: hdr}
}

func toPBMembers(ms []*membership.Member) []*pb.Member {
	out := make([]*pb.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, &pb.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	return out
}

func (s *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if r.GetLinearizable() {
		if err := s.b.LinearizableBarrier(ctx); err != nil {
			return nil, toGRPCError(err)
		}
	}
	return &pb.MemberListResponse{Header: NewHeader(s.hdr), Members: toPBMembers(s.b.Members())}, nil
}

// Membership changes need the peer transport, which does not exist yet:
// say so plainly instead of pretending.
var errReconfigUnsupported = status.Error(codes.Unimplemented, "metastore: membership changes are not supported yet (single-member clusters only)")

func (s *clusterServer) MemberAdd(context.Context, *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	return nil, errReconfigUnsupported
}

func (s *clusterServer) MemberRemove(_ context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	for _, m := range s.b.Members() {
		if m.ID == r.GetID() {
			return nil, errReconfigUnsupported
		}
	}
	return nil, rpctypes.ErrGRPCMemberNotFound
}

func (s *clusterServer) MemberUpdate(_ context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	for _, m := range s.b.Members() {
		if m.ID == r.GetID() {
			return nil, errReconfigUnsupported
		}
	}
	return nil, rpctypes.ErrGRPCMemberNotFound
}

func (s *clusterServer) MemberPromote(_ context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	for _, m := range s.b.Members() {
		if m.ID == r.GetID() {
			if !m.IsLearner {
				return nil, rpctypes.ErrGRPCMemberNotLearner
			}
			return nil, errReconfigUnsupported
		}
	}
	return nil, rpctypes.ErrGRPCMemberNotFound
}
