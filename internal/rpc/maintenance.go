package rpc

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	"google.golang.org/grpc"

	"github.com/metastore/metastore/internal/version"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// MemberStatus is what Maintenance.Status reports about this member.
type MemberStatus struct {
	Version          string
	StorageVersion   string
	DBSize           int64
	DBSizeInUse      int64
	DBSizeQuota      int64
	Leader           uint64
	RaftIndex        uint64
	RaftTerm         uint64
	RaftAppliedIndex uint64
	Errors           []string
	IsLearner        bool
}

// MaintenanceBackend is what the Maintenance service needs.
type MaintenanceBackend interface {
	MemberStatus(ctx context.Context) (MemberStatus, error)
	Hash(ctx context.Context) (uint32, error)
	HashKV(ctx context.Context, rev int64) (hash uint32, compactRev, hashRev int64, err error)
	Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error)
	MoveLeader(ctx context.Context, target uint64) error
	// Snapshot returns a consistent copy of the member's state as a byte
	// stream of exactly size bytes.
	Snapshot(ctx context.Context) (r io.ReadCloser, size int64, err error)
	// Defragment gives the space held by deleted and compacted-away
	// versions back to the file system; reads and writes go on meanwhile.
	Defragment(ctx context.Context) error
}

// snapshotChunk is etcd's send buffer size.
const snapshotChunk = 32 * 1024

// Snapshot streams the member's state as etcd does: chunks with the bytes
// still to come, then the SHA-256 of everything sent, which etcdctl checks
// for before it keeps the file.
func (s *maintenanceServer) Snapshot(_ *pb.SnapshotRequest, srv grpc.ServerStreamingServer[pb.SnapshotResponse]) error {
	r, total, err := s.b.Snapshot(srv.Context())
	if err != nil {
		return toGRPCError(err)
	}
	defer r.Close()
	h := sha256.New()
	var sent int64
	for sent < total {
		buf := make([]byte, min(snapshotChunk, total-sent)) // Send may keep buf: a new one each time
		n, err := io.ReadFull(r, buf)
		if err != nil {
			return toGRPCError(fmt.Errorf("rpc: read snapshot: %w", err))
		}
		sent += int64(n)
		h.Write(buf[:n])
		if err := srv.Send(&pb.SnapshotResponse{RemainingBytes: uint64(total - sent), Blob: buf[:n], Version: version.StorageVersion}); err != nil {
			return err
		}
	}
	return srv.Send(&pb.SnapshotResponse{Blob: h.Sum(nil), Version: version.StorageVersion})
}

type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	b   MaintenanceBackend
	hdr HeaderSource
}

// NewMaintenanceServer returns etcd's Maintenance service.
func NewMaintenanceServer(b MaintenanceBackend, hdr HeaderSource) pb.MaintenanceServer {
	return &maintenanceServer{b: b, hdr: hdr}
}

func (s *maintenanceServer) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	st, err := s.b.MemberStatus(ctx)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.StatusResponse{
		Header:           NewHeader(s.hdr),
		Version:          st.Version,
		DbSize:           st.DBSize,
		Leader:           st.Leader,
		RaftIndex:        st.RaftIndex,
		RaftTerm:         st.RaftTerm,
		RaftAppliedIndex: st.RaftAppliedIndex,
		Errors:           st.Errors,
		DbSizeInUse:      st.DBSizeInUse,
		IsLearner:        st.IsLearner,
		StorageVersion:   st.StorageVersion,
		DbSizeQuota:      st.DBSizeQuota,
	}, nil
}

func (s *maintenanceServer) Hash(ctx context.Context, _ *pb.HashRequest) (*pb.HashResponse, error) {
	h, err := s.b.Hash(ctx)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.HashResponse{Header: NewHeader(s.hdr), Hash: h}, nil
}

func (s *maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	h, compactRev, hashRev, err := s.b.HashKV(ctx, r.GetRevision())
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.HashKVResponse{Header: NewHeader(s.hdr), Hash: h, CompactRevision: compactRev, HashRevision: hashRev}, nil
}

func (s *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	resp, err := s.b.Alarm(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = NewHeader(s.hdr)
	return resp, nil
}

// Defragment compacts this member's whole store and answers when it is
// done, as etcd does; unlike etcd, the member serves reads and writes
// meanwhile (internal/member/maintenance).
func (s *maintenanceServer) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if err := s.b.Defragment(ctx); err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.DefragmentResponse{Header: NewHeader(s.hdr)}, nil
}

func (s *maintenanceServer) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if s.hdr.MemberID() != 0 {
		if err := s.b.MoveLeader(ctx, r.GetTargetID()); err != nil {
			return nil, toGRPCError(err)
		}
	}
	return &pb.MoveLeaderResponse{Header: NewHeader(s.hdr)}, nil
}

// Downgrader serves the Downgrade RPC (internal/downgrade).
type Downgrader interface {
	Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error)
}

// Downgrade answers through the backend's Downgrader; a backend without
// one has no cluster version to go down from.
func (s *maintenanceServer) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	d, ok := s.b.(Downgrader)
	if !ok {
		return nil, rpctypes.ErrGRPCClusterVersionUnavailable
	}
	resp, err := d.Downgrade(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = NewHeader(s.hdr)
	return resp, nil
}
