package rpc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/membership"
)

// ClusterBackend is what the Cluster service needs.
type ClusterBackend interface {
	Members() []*membership.Member
	// LinearizableBarrier is used when MemberList asks for linearizable.
	LinearizableBarrier(ctx context.Context) error
	// AddMember, RemoveMember, UpdateMember and PromoteMember change the
	// membership through Raft and return the members afterwards.
	AddMember(ctx context.Context, peerURLs []string, isLearner bool) (*membership.Member, []*membership.Member, error)
	RemoveMember(ctx context.Context, id uint64) ([]*membership.Member, error)
	UpdateMember(ctx context.Context, id uint64, peerURLs []string) ([]*membership.Member, error)
	PromoteMember(ctx context.Context, id uint64) ([]*membership.Member, error)
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

func toPBMember(m *membership.Member) *pb.Member {
	return &pb.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner}
}

func toPBMembers(ms []*membership.Member) []*pb.Member {
	out := make([]*pb.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, toPBMember(m))
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

func (s *clusterServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	m, ms, err := s.b.AddMember(ctx, r.GetPeerURLs(), r.GetIsLearner())
	if err != nil {
		return nil, toGRPCError(err)
	}
	// etcd answers with the new member as requested: no name, no client
	// URLs until it starts.
	return &pb.MemberAddResponse{
		Header:  NewHeader(s.hdr),
		Member:  &pb.Member{ID: m.ID, PeerURLs: m.PeerURLs, IsLearner: m.IsLearner},
		Members: toPBMembers(ms),
	}, nil
}

func (s *clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	ms, err := s.b.RemoveMember(ctx, r.GetID())
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberRemoveResponse{Header: NewHeader(s.hdr), Members: toPBMembers(ms)}, nil
}

func (s *clusterServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	ms, err := s.b.UpdateMember(ctx, r.GetID(), r.GetPeerURLs())
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberUpdateResponse{Header: NewHeader(s.hdr), Members: toPBMembers(ms)}, nil
}

func (s *clusterServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	ms, err := s.b.PromoteMember(ctx, r.GetID())
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberPromoteResponse{Header: NewHeader(s.hdr), Members: toPBMembers(ms)}, nil
}
