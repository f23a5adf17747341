// Package kvtrace gives each KV operation, under its gRPC call's span, a
// span named and attributed as etcd's server names its KV operations, so
// dashboards built on etcd's traces find them. It is apart from
// internal/tracing because it wraps the rpc package's view of the request
// path, and that path (internal/backend) uses internal/tracing.
package kvtrace

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/metastore/metastore/internal/rpc"
	"github.com/metastore/metastore/internal/tracing"
)

// Wrap opens etcd's range, range_streaming, put, delete_range, txn and
// compact spans around kv's calls. The server wraps its KV only when
// tracing is on.
func Wrap(kv rpc.KVBackend) rpc.KVBackend { return tracedKV{kv} }

type tracedKV struct{ next rpc.KVBackend }

func finish(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

func (k tracedKV) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	ctx, span := tracing.Start(ctx, "range",
		attribute.String("range_begin", string(r.GetKey())),
		attribute.String("range_end", string(r.GetRangeEnd())),
		attribute.Int64("rev", r.GetRevision()),
		attribute.Int64("limit", r.GetLimit()),
		attribute.Bool("count_only", r.GetCountOnly()),
		attribute.Bool("keys_only", r.GetKeysOnly()))
	resp, err := k.next.Range(ctx, r)
	finish(span, err)
	return resp, err
}

func (k tracedKV) RangeStream(ctx context.Context, r *pb.RangeRequest, send func(*pb.RangeResponse) error) error {
	ctx, span := tracing.Start(ctx, "range_streaming",
		attribute.String("range_begin", string(r.GetKey())),
		attribute.String("range_end", string(r.GetRangeEnd())),
		attribute.Int64("rev", r.GetRevision()),
		attribute.Int64("limit", r.GetLimit()),
		attribute.Bool("count_only", r.GetCountOnly()))
	err := k.next.RangeStream(ctx, r, send)
	finish(span, err)
	return err
}

func (k tracedKV) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	ctx, span := tracing.Start(ctx, "put", attribute.String("key", string(r.GetKey())))
	resp, err := k.next.Put(ctx, r)
	finish(span, err)
	return resp, err
}

func (k tracedKV) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	ctx, span := tracing.Start(ctx, "delete_range",
		attribute.String("range_begin", string(r.GetKey())),
		attribute.String("range_end", string(r.GetRangeEnd())))
	resp, err := k.next.DeleteRange(ctx, r)
	finish(span, err)
	return resp, err
}

func (k tracedKV) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	ctx, span := tracing.Start(ctx, "txn",
		attribute.Int("compare_len", len(r.GetCompare())),
		attribute.Int("success_len", len(r.GetSuccess())),
		attribute.Int("failure_len", len(r.GetFailure())))
	resp, err := k.next.Txn(ctx, r)
	finish(span, err)
	return resp, err
}

func (k tracedKV) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	ctx, span := tracing.Start(ctx, "compact",
		attribute.Bool("is_physical", r.GetPhysical()),
		attribute.Int64("rev", r.GetRevision()))
	resp, err := k.next.Compact(ctx, r)
	finish(span, err)
	return resp, err
}
