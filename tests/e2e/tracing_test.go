package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/metastore/metastore/tests/framework"
)

// collector is an in-process OTLP trace collector: the server under test
// exports its spans to it over gRPC.
type collector struct {
	collectorpb.UnimplementedTraceServiceServer
	addr string

	mu        sync.Mutex
	spans     []*tracepb.Span // guarded by mu
	resources []map[string]string
}

func startCollector(t *testing.T) *collector {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(t, "collector listen", err)
	c := &collector{addr: l.Addr().String()}
	srv := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(srv, c)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return c
}

func (c *collector) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		attrs := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				c.spans = append(c.spans, sp)
				c.resources = append(c.resources, attrs)
			}
		}
	}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

// trace returns the spans received so far whose trace holds a span named
// root with attribute key=val, and that span's resource attributes.
func (c *collector) trace(root, key, val string) ([]*tracepb.Span, map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, sp := range c.spans {
		if sp.GetName() != root || attr(sp, key) != val {
			continue
		}
		var out []*tracepb.Span
		for _, o := range c.spans {
			if string(o.GetTraceId()) == string(sp.GetTraceId()) {
				out = append(out, o)
			}
		}
		return out, c.resources[i]
	}
	return nil, nil
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.spans)
}

func attr(sp *tracepb.Span, key string) string {
	for _, kv := range sp.GetAttributes() {
		if kv.GetKey() == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// child returns the one span of spans named name whose parent is parent.
func child(t *testing.T, spans []*tracepb.Span, parent *tracepb.Span, name string) *tracepb.Span {
	t.Helper()
	for _, sp := range spans {
		if sp.GetName() == name && string(sp.GetParentSpanId()) == string(parent.GetSpanId()) {
			if sp.GetStartTimeUnixNano() < parent.GetStartTimeUnixNano() || sp.GetEndTimeUnixNano() > parent.GetEndTimeUnixNano() {
				t.Errorf("span %s [%d, %d] is not within its parent %s [%d, %d]", name, sp.GetStartTimeUnixNano(), sp.GetEndTimeUnixNano(),
					parent.GetName(), parent.GetStartTimeUnixNano(), parent.GetEndTimeUnixNano())
			}
			return sp
		}
	}
	t.Fatalf("no span %q under %q; spans: %s", name, parent.GetName(), spanNames(spans))
	return nil
}

func spanNames(spans []*tracepb.Span) string {
	var s []string
	for _, sp := range spans {
		s = append(s, fmt.Sprintf("%s(id %x parent %x)", sp.GetName(), sp.GetSpanId(), sp.GetParentSpanId()))
	}
	return strings.Join(s, ", ")
}

// waitTrace polls the collector until the trace of root with key=val
// holds a span named last (the gRPC call's span, which ends after all the
// others, so they were exported before it).
func (c *collector) waitTrace(t *testing.T, root, key, val, last string) ([]*tracepb.Span, map[string]string, *tracepb.Span) {
	t.Helper()
	var (
		spans []*tracepb.Span
		res   map[string]string
	)
	err := framework.WaitFor(20*time.Second, 20*time.Millisecond, func() (bool, error) {
		spans, res = c.trace(root, key, val)
		return slices.ContainsFunc(spans, func(s *tracepb.Span) bool { return s.GetName() == last }), nil
	})
	if err != nil {
		t.Fatalf("trace of %s %s=%s has no %s span: %s", root, key, val, last, spanNames(spans))
	}
	return spans, res, spans[slices.IndexFunc(spans, func(s *tracepb.Span) bool { return s.GetName() == last })]
}

// startTraced starts a collector and a member exporting to it with the
// given sampling rate.
func startTraced(t *testing.T, rate string) (*collector, *clientv3.Client, context.Context) {
	t.Helper()
	col := startCollector(t)
	m := framework.Start(t, framework.Options{
		ExtraArgs: []string{
			"--enable-distributed-tracing",
			"--distributed-tracing-address", col.addr,
			"--distributed-tracing-service-name", "meta-svc",
			"--distributed-tracing-instance-id", "instance-7",
			"--distributed-tracing-sampling-rate", rate,
		},
		// Export every 50 ms instead of the SDK's 5 s batching delay.
		Env: []string{"OTEL_BSP_SCHEDULE_DELAY=50"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return col, m.Client(), ctx
}

// TestDistributedTracing checks that with --enable-distributed-tracing a
// put's spans reach an OTLP collector as one trace: the gRPC call's span,
// etcd's "put" span under it, and under that (metastore only) the proposal
// with its raft.commit and apply children, engine.write under apply; a
// linearizable read has a read_index span, a serializable one none.
func TestDistributedTracing(t *testing.T) {
	col, c, ctx := startTraced(t, "1000000")

	mustPut(t, c, ctx, "traced-key", "v")
	spans, res, rpc := col.waitTrace(t, "put", "key", "traced-key", "etcdserverpb.KV/Put")
	if res["service.name"] != "meta-svc" || res["service.instance.id"] != "instance-7" {
		t.Errorf("resource attributes %v, want service.name=meta-svc service.instance.id=instance-7", res)
	}
	if rpc.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("gRPC span kind %v, want SERVER", rpc.GetKind())
	}
	put := child(t, spans, rpc, "put")
	if ours() {
		prop := child(t, spans, put, "proposal")
		child(t, spans, prop, "raft.commit")
		ap := child(t, spans, prop, "apply")
		child(t, spans, ap, "engine.write")
	}

	mustGet(t, c, ctx, "traced-key")
	mustGet(t, c, ctx, "traced-key-serializable", clientv3.WithSerializable())
	spans, _, rpc = col.waitTrace(t, "range", "range_begin", "traced-key", "etcdserverpb.KV/Range")
	rng := child(t, spans, rpc, "range")
	sspans, _, _ := col.waitTrace(t, "range", "range_begin", "traced-key-serializable", "etcdserverpb.KV/Range")
	if ours() {
		child(t, spans, rng, "read_index")
		if i := slices.IndexFunc(sspans, func(s *tracepb.Span) bool { return s.GetName() == "read_index" }); i >= 0 {
			t.Errorf("a serializable read has a read_index span: %s", spanNames(sspans))
		}
	}
}

// TestDistributedTracingFollowsCaller checks the sampling rule: with
// --distributed-tracing-sampling-rate 0 the server records a request only
// when its caller sampled it (W3C traceparent header), and then in the
// caller's trace.
func TestDistributedTracingFollowsCaller(t *testing.T) {
	col, c, ctx := startTraced(t, "0")

	mustPut(t, c, ctx, "unsampled", "v")
	traceID := "4bf92f3577b34da6a3ce929d0e0e4736"
	sctx := metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	mustPut(t, c, sctx, "sampled", "v")
	spans, _, _ := col.waitTrace(t, "put", "key", "sampled", "etcdserverpb.KV/Put")
	if got := hex.EncodeToString(spans[0].GetTraceId()); got != traceID {
		t.Errorf("trace id %s, want the caller's %s", got, traceID)
	}
	// Spans are exported in the order they end: the earlier put's would
	// have come first.
	if s, _ := col.trace("put", "key", "unsampled"); len(s) != 0 {
		t.Errorf("an unsampled request was recorded: %s", spanNames(s))
	}
	if n := col.count(); n != len(spans) {
		t.Errorf("collector holds %d spans, the sampled trace %d", n, len(spans))
	}
}
