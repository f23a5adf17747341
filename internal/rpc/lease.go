package rpc

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/lease"
)

// LeaseBackend is what the Lease service needs from the request path.
type LeaseBackend interface {
	LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error)
	LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error)
	// LeaseRenew returns the refreshed TTL, or lease.ErrLeaseNotFound.
	LeaseRenew(ctx context.Context, id int64) (int64, error)
	// LeaseTimeToLive returns lease.ErrLeaseNotFound for an unknown lease.
	LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error)
	LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error)
}

type leaseServer struct {
	pb.UnimplementedLeaseServer
	b   LeaseBackend
	hdr HeaderSource
}

// NewLeaseServer returns etcd's Lease service.
func NewLeaseServer(b LeaseBackend, hdr HeaderSource) pb.LeaseServer {
	return &leaseServer{b: b, hdr: hdr}
}

func (s *leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	resp, err := s.b.LeaseGrant(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = fillHeader(s.hdr, resp.Header)
	return resp, nil
}

func (s *leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	resp, err := s.b.LeaseRevoke(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = fillHeader(s.hdr, resp.Header)
	return resp, nil
}

// LeaseTimeToLive answers TTL -1 for an unknown lease, not an error.
func (s *leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	resp, err := s.b.LeaseTimeToLive(ctx, r)
	if errors.Is(err, lease.ErrLeaseNotFound) {
		resp, err = &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{}, ID: r.ID, TTL: -1}, nil
	}
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = fillHeader(s.hdr, resp.Header)
	return resp, nil
}

func (s *leaseServer) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	resp, err := s.b.LeaseLeases(ctx, r)
	if errors.Is(err, lease.ErrLeaseNotFound) {
		resp, err = &pb.LeaseLeasesResponse{Header: &pb.ResponseHeader{}, Leases: []*pb.LeaseStatus{}}, nil
	}
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = fillHeader(s.hdr, resp.Header)
	return resp, nil
}

// LeaseKeepAlive answers each request with one response: the refreshed TTL,
// or TTL 0 for an unknown or expired lease. It returns when the client
// closes its side or the stream's context ends, even while a renewal is
// still waiting.
func (s *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	errc := make(chan error, 1)
	go func() { errc <- s.keepAlive(stream) }()
	select {
	case err := <-errc:
		return err
	case <-stream.Context().Done():
		return stream.Context().Err()
	}
}

func (s *leaseServer) keepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	ctx := stream.Context()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		// The header is taken before the renewal, as etcd does.
		resp := &pb.LeaseKeepAliveResponse{ID: req.ID, Header: NewHeader(s.hdr)}
		ttl, err := s.b.LeaseRenew(ctx, req.ID)
		if errors.Is(err, lease.ErrLeaseNotFound) {
			ttl, err = 0, nil
		}
		if err != nil {
			return toGRPCError(err)
		}
		resp.TTL = ttl
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}
