package middleware

import (
	"context"
	"fmt"
	"sync/atomic"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	mmetrics "github.com/metastore/metastore/internal/metrics"
)

// MetricsConfig configures GRPCMetrics.
type MetricsConfig struct {
	Registerer prometheus.Registerer
	// NoHandlingTimeHistogram drops grpc_server_handling_seconds, as etcd
	// does unless --metrics=extensive. The histogram is on by default.
	NoHandlingTimeHistogram bool
	// HandlingTimeBuckets overrides the histogram buckets (default
	// prometheus.DefBuckets, as in etcd).
	HandlingTimeBuckets []float64
}

// GRPCMetrics counts requests with etcd's grpc_server_* metrics (the same
// go-grpc-middleware provider etcd uses: grpc_server_started_total,
// grpc_server_handled_total, grpc_server_msg_received_total,
// grpc_server_msg_sent_total, grpc_server_handling_seconds, labelled
// grpc_type, grpc_service, grpc_method and grpc_code) and exposes
// metastore_requests_in_flight (unary) and metastore_streams_open.
type GRPCMetrics struct {
	server   *grpcprom.ServerMetrics
	inFlight atomic.Int64
	streams  atomic.Int64
}

// NewGRPCMetrics builds and registers the collectors.
func NewGRPCMetrics(cfg MetricsConfig) (*GRPCMetrics, error) {
	var opts []grpcprom.ServerMetricsOption
	if !cfg.NoHandlingTimeHistogram {
		var hopts []grpcprom.HistogramOption
		if cfg.HandlingTimeBuckets != nil {
			hopts = append(hopts, grpcprom.WithHistogramBuckets(cfg.HandlingTimeBuckets))
		}
		opts = append(opts, grpcprom.WithServerHandlingTimeHistogram(hopts...))
	}
	m := &GRPCMetrics{server: grpcprom.NewServerMetrics(opts...)}
	err := mmetrics.RegisterAll(cfg.Registerer, m.server,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "metastore_requests_in_flight",
			Help: "The number of unary gRPC requests being handled now (past the limits).",
		}, func() float64 { return float64(m.inFlight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "metastore_streams_open",
			Help: "The number of gRPC streams (watch, lease keep-alive, snapshot) open now.",
		}, func() float64 { return float64(m.streams.Load()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("grpc metrics: %w", err)
	}
	return m, nil
}

// InitializeMetrics pre-creates the series of every registered method with
// zero values, as etcd does; call it after registering the services.
func (m *GRPCMetrics) InitializeMetrics(s *grpc.Server) { m.server.InitializeMetrics(s) }

// InFlight is the number of unary requests being handled.
func (m *GRPCMetrics) InFlight() int64 { return m.inFlight.Load() }

// UnaryServerInterceptor records the request.
func (m *GRPCMetrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	inner := m.server.UnaryServerInterceptor()
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		m.inFlight.Add(1)
		defer m.inFlight.Add(-1)
		return inner(ctx, req, info, handler)
	}
}

// StreamServerInterceptor records the stream and its messages.
func (m *GRPCMetrics) StreamServerInterceptor() grpc.StreamServerInterceptor {
	inner := m.server.StreamServerInterceptor()
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		m.streams.Add(1)
		defer m.streams.Add(-1)
		return inner(srv, ss, info, handler)
	}
}
