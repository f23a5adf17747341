package middleware

import (
	"context"
	"fmt"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/txn"
)

// SlowLogConfig configures SlowLog.
type SlowLogConfig struct {
	Logger *zap.Logger
	// UnaryWarn is --warning-unary-request-duration: a unary call slower
	// than this is logged as "request stats" at warn level (every call is,
	// at debug level, when debug logging is on).
	UnaryWarn time.Duration
	// ApplyWarn is --warning-apply-duration: a range or read-only txn,
	// served without Raft, slower than this is logged as "apply request
	// took too long" (the applier logs the replicated requests).
	ApplyWarn time.Duration
	// SlowRead, if set, is called for each such read (etcd counts them in
	// etcd_server_slow_apply_total).
	SlowRead func()
}

// SlowLog logs slow requests with their summary in etcd's words, so that
// operators' log searches for etcd's messages keep working. Values are
// never logged: puts show value_size, as in etcd.
type SlowLog struct {
	cfg SlowLogConfig
}

// NewSlowLog returns the interceptor's state.
func NewSlowLog(cfg SlowLogConfig) *SlowLog {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &SlowLog{cfg: cfg}
}

// UnaryServerInterceptor times each unary call.
func (s *SlowLog) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		d := time.Since(start)
		if s.cfg.ApplyWarn > 0 && d > s.cfg.ApplyWarn {
			s.readOnlyWarning(req, resp, start, d, err)
		}
		debug := s.cfg.Logger.Core().Enabled(zap.DebugLevel)
		if debug || d > s.cfg.UnaryWarn {
			s.requestStats(ctx, debug, info.FullMethod, req, resp, start, d)
		}
		return resp, err
	}
}

// requestStats logs etcd's "request stats" line: debug for every call
// when debug logging is on, else warn for a slow one.
//
// The logger samples (internal/logutil: past 100 identical lines a second,
// one in 100): under overload most of these lines are dropped, so the
// request is only summarised (sizes, text encoding) once the logger has
// said it will write the line.
func (s *SlowLog) requestStats(ctx context.Context, debug bool, method string, req, resp any, start time.Time, d time.Duration) {
	level := zap.WarnLevel
	if debug {
		level = zap.DebugLevel
	}
	ce := s.cfg.Logger.Check(level, "request stats")
	if ce == nil {
		return
	}
	remote := "No remote client info."
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
	}
	reqCount, reqSize, respCount, respSize := int64(-1), -1, int64(-1), -1
	var content string
	switch r := req.(type) {
	case *pb.RangeRequest:
		reqCount, reqSize, content = 0, proto.Size(r), r.String()
		if rr, ok := resp.(*pb.RangeResponse); ok && rr != nil {
			respCount, respSize = rr.GetCount(), proto.Size(rr)
		}
	case *pb.PutRequest:
		reqCount, reqSize, content = 1, proto.Size(r), pb.NewLoggablePutRequest(r).String()
		if pr, ok := resp.(*pb.PutResponse); ok && pr != nil {
			respCount, respSize = 0, proto.Size(pr)
		}
	case *pb.DeleteRangeRequest:
		reqCount, reqSize, content = 0, proto.Size(r), r.String()
		if dr, ok := resp.(*pb.DeleteRangeResponse); ok && dr != nil {
			respCount, respSize = dr.GetDeleted(), proto.Size(dr)
		}
	case *pb.TxnRequest:
		// As etcd: the ops of the branch that ran, counted when it answered.
		if tr, ok := resp.(*pb.TxnResponse); ok && tr != nil {
			ops := r.GetFailure()
			if tr.GetSucceeded() {
				ops = r.GetSuccess()
			}
			reqCount, reqSize = int64(len(ops)), 0
			for _, op := range ops {
				reqSize += proto.Size(op)
			}
			content = pb.NewLoggableTxnRequest(r).String()
			respCount, respSize = 0, proto.Size(tr)
		}
	}
	ce.Write(
		zap.Time("start time", start),
		zap.Duration("time spent", d),
		zap.String("remote", remote),
		zap.String("response type", method),
		zap.Int64("request count", reqCount),
		zap.Int("request size", reqSize),
		zap.Int64("response count", respCount),
		zap.Int("response size", respSize),
		zap.String("request content", content),
	)
}

// readOnlyWarning logs a slow range or read-only txn as etcd's server
// does for the reads it serves without going through apply.
// Like requestStats, it summarises the request only for a line the
// logger's sampling keeps; SlowRead counts every slow read.
func (s *SlowLog) readOnlyWarning(req, resp any, start time.Time, d time.Duration, err error) {
	switch r := req.(type) {
	case *pb.RangeRequest:
	case *pb.TxnRequest:
		if !txn.IsTxnReadOnly(r) {
			return // replicated: the applier warns
		}
	default:
		return
	}
	if s.cfg.SlowRead != nil {
		defer s.cfg.SlowRead()
	}
	ce := s.cfg.Logger.Check(zap.WarnLevel, "apply request took too long")
	if ce == nil {
		return
	}
	var prefix, request, response string
	switch r := req.(type) {
	case *pb.RangeRequest:
		prefix, request = "read-only range ", r.String()
		if rr, ok := resp.(*pb.RangeResponse); ok && rr != nil {
			response = fmt.Sprintf("range_response_count:%d size:%d", len(rr.GetKvs()), proto.Size(rr))
		}
	case *pb.TxnRequest:
		prefix, request = "read-only txn ", pb.NewLoggableTxnRequest(r).String()
		if tr, ok := resp.(*pb.TxnResponse); ok && tr != nil {
			var counts []string
			for _, op := range tr.GetResponses() {
				if rr := op.GetResponseRange(); rr != nil {
					counts = append(counts, fmt.Sprintf("range_response_count:%d", len(rr.GetKvs())))
				}
			}
			response = fmt.Sprintf("responses:<%s> size:%d", strings.Join(counts, " "), proto.Size(tr))
		}
	}
	ce.Write(
		zap.Duration("took", d),
		zap.Duration("expected-duration", s.cfg.ApplyWarn),
		zap.String("prefix", prefix),
		zap.String("request", request),
		zap.String("response", response),
		zap.Error(err),
	)
}
