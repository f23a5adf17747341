package rpc

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/backend"
	"github.com/metastore/metastore/internal/respbudget"

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
	onInvalid func(reason string)
	budget    *respbudget.Budget // nil: ranges are not budgeted
	sent      *BudgetCodec       // releases a unary Range's charge once encoded; nil: at return
}

// NewKVServer returns etcd's KV service. onInvalid, if set, is told of
// every request refused by validation (metastore_validation_errors_total).
func NewKVServer(b KVBackend, hdr HeaderSource, maxTxnOps int, onInvalid func(reason string), opts ...KVOption) pb.KVServer {
	s := &kvServer{b: b, hdr: hdr, maxTxnOps: maxTxnOps, onInvalid: onInvalid}
	for _, o := range opts {
		o(s)
	}
	return s
}

// invalid counts a validation error and returns it.
func (s *kvServer) invalid(err error) error {
	if s.onInvalid != nil {
		s.onInvalid(ValidationReason(err))
	}
	return err
}

// ValidationReason turns one of etcd's validation errors into a short
// metric label ("key is not provided" → "key_is_not_provided").
func ValidationReason(err error) string {
	msg := err.Error()
	if st, ok := status.FromError(err); ok {
		msg = st.Message()
	}
	msg = strings.TrimPrefix(msg, "etcdserver: ")
	return strings.ReplaceAll(msg, " ", "_")
}

func (s *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := txn.CheckRangeRequest(r); err != nil {
		return nil, s.invalid(err)
	}
	// The scan charges every key-value to acct (see package respbudget);
	// the charge lasts until gRPC has encoded the response (BudgetCodec).
	acct := s.budget.NewAccount()
	resp, err := s.b.Range(respbudget.WithAccount(ctx, acct), r)
	if err != nil {
		acct.Release()
		return nil, budgetError(err)
	}
	s.sent.releaseAfterEncode(resp, acct)
	fillHeader(s.hdr, resp.Header)
	return resp, nil
}

func (s *kvServer) RangeStream(r *pb.RangeRequest, stream grpc.ServerStreamingServer[pb.RangeStreamResponse]) error {
	if err := txn.CheckRangeRequest(r); err != nil {
		return s.invalid(err)
	}
	// Each chunk is charged while it is read and released once Send has
	// handed its encoding to the transport.
	acct := s.budget.NewAccount()
	defer acct.Release()
	err := s.b.RangeStream(respbudget.WithAccount(stream.Context(), acct), r, func(resp *pb.RangeResponse) error {
		if resp.Header != nil {
			fillHeader(s.hdr, resp.Header)
		}
		err := stream.Send(&pb.RangeStreamResponse{RangeResponse: resp})
		acct.Release()
		return err
	})
	return budgetError(err)
}

func (s *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := txn.CheckPutRequest(r); err != nil {
		return nil, s.invalid(err)
	}
	resp, err := s.b.Put(ctx, r)
	if errors.Is(err, backend.ErrRequestTooLarge) {
		return nil, s.invalid(toGRPCError(err))
	}
	if err != nil {
		return nil, toGRPCError(err)
	}
	fillHeader(s.hdr, resp.Header)
	return resp, nil
}

func (s *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := txn.CheckDeleteRequest(r); err != nil {
		return nil, s.invalid(err)
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
		return nil, s.invalid(err)
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
