package tracing

import (
	"context"
	"fmt"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/stats"
)

// Scope is the instrumentation scope of metastore's own spans.
const Scope = "github.com/metastore/metastore"

// MaxSamplingRate is the largest --distributed-tracing-sampling-rate: the
// rate is in samples per million.
const MaxSamplingRate = 1_000_000

// Config is what the --*distributed-tracing* flags say.
type Config struct {
	// Address is the OTLP gRPC collector, host:port (plaintext, as etcd).
	Address     string
	ServiceName string
	// InstanceID, if set, becomes the service.instance.id resource attribute.
	InstanceID string
	// SamplingRatePerMillion: 0 samples only requests whose caller sampled.
	SamplingRatePerMillion int
}

// Provider exports the server's spans; Close flushes them.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// Setup starts exporting to c.Address. The exporter connects lazily, so a
// collector that is down costs dropped spans, never a failed start.
func Setup(ctx context.Context, c Config) (*Provider, error) {
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithInsecure(), otlptracegrpc.WithEndpoint(c.Address))
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter for %s: %w", c.Address, err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", c.ServiceName)}
	if c.InstanceID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", c.InstanceID))
	}
	sampler := sdktrace.NeverSample()
	if c.SamplingRatePerMillion > 0 {
		sampler = sdktrace.TraceIDRatioBased(float64(c.SamplingRatePerMillion) / MaxSamplingRate)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		sdktrace.WithSampler(sdktrace.ParentBased(sampler)),
	)
	return &Provider{tp: tp}, nil
}

// StatsHandler opens a span for every gRPC call, continuing the caller's
// trace from W3C trace context and baggage headers.
func (p *Provider) StatsHandler() stats.Handler {
	return otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(p.tp),
		otelgrpc.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
	)
}

// Close exports the spans still buffered and stops the exporter.
func (p *Provider) Close(ctx context.Context) error {
	if err := p.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shut down: %w", err)
	}
	return nil
}

// Start opens a child of the span in ctx with the tracer that made it. With
// no span in ctx (tracing off, or a request from inside the server) the
// child is a no-op.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, parent
	}
	return parent.TracerProvider().Tracer(Scope).Start(ctx, name, trace.WithAttributes(attrs...))
}
