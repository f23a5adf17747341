package rpc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/internal/txn"
)

// KVBackend is what the KV service needs from the request path.
type KVBackend interface {
	Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error)
	RangeStream(ctx context.Context, r *pb.RangeRequest, send func(*pb.RangeResponse) error) error
	Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error)
	DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error)
	Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error)
	Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error)
}

type kvServer struct {
	pb.UnimplementedKVServer
	b         KVBackend
	hdr       HeaderSource
	maxTxnOps int
}

// NewKVServer returns etcd's KV service.
func NewKVServer(b KVBackend, hdr HeaderSource, maxTxnOps int) pb.KVServer {
	return &kvServer{b: b, hdr: hdr, maxTxnOps: maxTxnOps}
}

func (s *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := txn.CheckRangeRequest(r); err != nil {
		return nil, err
	}
	resp, err := s.b.Range(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	fillHeader(s.hdr, resp.Header)
	return resp, nil
}

func (s *kvServer) RangeStream(r *pb.RangeRequest, stream grpc.ServerStreamingServer[pb.RangeStreamResponse]) error {
	if err := txn.CheckRangeRequest(r); err != nil {
		return err
	}
	err := s.b.RangeStream(stream.Context(), r, func(resp *pb.RangeResponse) error {
		if resp.Header != nil {
			fillHeader(s.hdr, resp.Header)
		}
		return stream.Send(&pb.RangeStreamResponse{RangeResponse: resp})
	})
	return toGRPCError(err)
}

func (s *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := txn.CheckPutRequest(r); err != nil {
		return nil, err
	}
	resp, err := s.b.Put(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	fillHeader(s.hdr, resp.Header)
	return resp, nil
}

func (s *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := txn.CheckDeleteRequest(r); err != nil {
		return nil, err
	}
	resp, err := s.b.DeleteRange(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	fillHeader(s.hdr, resp.Header)
	return resp, nil
}

func (s *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := txn.CheckTxnRequest(r, s.maxTxnOps); err != nil {
		return nil, err
	}
	resp, err := s.b.Txn(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	// Like etcd, only the top-level header is completed; nested responses
	// carry just their revision.
	fillHeader(s.hdr, resp.Header)
	return resp, nil
}

func (s *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	resp, err := s.b.Compact(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	fillHeader(s.hdr, resp.Header)
	return resp, nil
}
