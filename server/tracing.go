package server

import (
	"context"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/internal/rpc"
	"github.com/metastore/metastore/internal/tracing"
	"github.com/metastore/metastore/internal/tracing/kvtrace"
)

// setupTracing starts the OpenTelemetry exporter when
// --enable-distributed-tracing is set (internal/tracing).
func (s *Server) setupTracing() error {
	tc := s.cfg.Ops.Tracing
	if !tc.Enabled {
		return nil
	}
	p, err := tracing.Setup(context.Background(), tracing.Config{
		Address:                tc.Address,
		ServiceName:            tc.ServiceName,
		InstanceID:             tc.InstanceID,
		SamplingRatePerMillion: tc.SamplingRatePerMillion,
	})
	if err != nil {
		return err
	}
	s.tracer = p
	s.lg.Info("distributed tracing enabled", zap.String("address", tc.Address),
		zap.String("service-name", tc.ServiceName), zap.String("service-instance-id", tc.InstanceID),
		zap.Int("sampling-rate", tc.SamplingRatePerMillion))
	return nil
}

// tracingOptions adds the per-call span handler, as etcd does.
func (s *Server) tracingOptions() []grpc.ServerOption {
	if s.tracer == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(s.tracer.StatsHandler())}
}

// tracedKV gives each KV operation its etcd-named span when tracing is on.
func (s *Server) tracedKV(kv rpc.KVBackend) rpc.KVBackend {
	if s.tracer == nil {
		return kv
	}
	return kvtrace.Wrap(kv)
}

// closeTracing flushes the spans still buffered, within ctx.
func (s *Server) closeTracing(ctx context.Context) error {
	if s.tracer == nil {
		return nil
	}
	return s.tracer.Close(ctx)
}
