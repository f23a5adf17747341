package middleware

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type fullChain struct {
	reg  *prometheus.Registry
	rec  *Recoverer
	rl   *RateLimiter
	lim  *Limiter
	gm   *GRPCMetrics
	opts ChainOptions
}

func newFullChain(t testing.TB, rate float64, auth grpc.UnaryServerInterceptor) *fullChain {
	t.Helper()
	f := &fullChain{reg: prometheus.NewRegistry()}
	var err error
	if f.rec, err = NewRecoverer(RecoverConfig{Registerer: f.reg}); err != nil {
		t.Fatal(err)
	}
	if f.rl, err = NewRateLimiter(RateLimitConfig{Rate: rate, Registerer: f.reg}); err != nil {
		t.Fatal(err)
	}
	if f.lim, err = NewLimiter(LimitsConfig{MaxRequests: 5000, RequestTimeout: 30 * time.Second,
		MaxMemoryBytes: 1 << 40, IsWrite: EtcdWrites, Registerer: f.reg}); err != nil {
		t.Fatal(err)
	}
	if f.gm, err = NewGRPCMetrics(MetricsConfig{Registerer: f.reg}); err != nil {
		t.Fatal(err)
	}
	f.opts = ChainOptions{Recover: f.rec, RateLimit: f.rl, Limits: f.lim, AuthUnary: auth, Metrics: f.gm}
	return f
}

func TestChainOrderAndMetrics(t *testing.T) {
	var authSawDeadline, authCalls int
	auth := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		authCalls++
		if _, ok := ctx.Deadline(); ok {
			authSawDeadline++ // limits (timeout) run before auth
		}
		if string(req.(*wrapperspb.BytesValue).GetValue()) == "deny" {
			return nil, status.Error(codes.PermissionDenied, "denied")
		}
		return h(ctx, req)
	}
	f := newFullChain(t, 1000, auth)
	us, ss := Chain(f.opts)
	// Unary: grow stack, recover, metrics, rate limit, limits, auth, recover.
	if len(us) != 7 || len(ss) != 5 {
		t.Fatalf("chain lengths unary=%d stream=%d, want 7 and 5", len(us), len(ss))
	}
	var lis *LimitedListener
	env := startServer(t, us, ss, func(l net.Listener) net.Listener {
		lis = LimitListener(l, 100, nil)
		return lis
	}, f.gm.InitializeMetrics)
	if err := lis.RegisterMetrics(f.reg); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if _, err := env.call(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.call(ctx, "deny"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("auth denial = %v", err)
	}
	if authCalls != 2 || authSawDeadline != 2 {
		t.Fatalf("auth calls=%d with deadline=%d, want 2/2", authCalls, authSawDeadline)
	}
	st, err := env.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, streamMethod)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SendMsg(wrapperspb.Bytes([]byte("s"))); err != nil {
		t.Fatal(err)
	}
	if err := st.RecvMsg(new(wrapperspb.BytesValue)); err != nil {
		t.Fatal(err)
	}
	out := scrape(t, f.reg)
	for _, want := range []string{
		`grpc_server_started_total{grpc_method="Echo",grpc_service="test.Echo",grpc_type="unary"} 1`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Echo",grpc_service="test.Echo",grpc_type="unary"} 1`,
		`grpc_server_msg_received_total{grpc_method="Echo",grpc_service="test.Echo",grpc_type="unary"} 1`,
		`grpc_server_msg_sent_total{grpc_method="Echo",grpc_service="test.Echo",grpc_type="unary"} 1`,
		`grpc_server_msg_received_total{grpc_method="Stream",grpc_service="test.Echo",grpc_type="bidi_stream"} 1`,
		`grpc_server_handling_seconds_bucket{grpc_method="Echo",grpc_service="test.Echo",grpc_type="unary",le="0.005"}`,
		"metastore_requests_in_flight 0",
		"metastore_streams_open 1",
		"metastore_rate_limited_total 0",
		"metastore_connections_current 1",
		"metastore_panic_total",
		`metastore_requests_rejected_total`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	_ = st.CloseSend()
}

// A request refused by the rate limit never reaches auth or the handler.
func TestChainRateLimitBeforeAuth(t *testing.T) {
	authCalls := 0
	auth := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		authCalls++
		return h(ctx, req)
	}
	f := newFullChain(t, 0.001, auth) // burst 1, then nothing for ~17 min
	us, ss := Chain(f.opts)
	env := startServer(t, us, ss, nil, nil)
	ctx := testCtx(t)
	if _, err := env.call(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.call(ctx, "b"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("second request = %v, want rate limited", err)
	}
	if authCalls != 1 {
		t.Fatalf("auth called %d times, want 1", authCalls)
	}
}

// With MetricsOuter, refused requests are counted with their codes.
func TestChainMetricsOuterCountsRejections(t *testing.T) {
	f := newFullChain(t, 0.001, nil)
	f.opts.MetricsOuter = true
	us, ss := Chain(f.opts)
	env := startServer(t, us, ss, nil, f.gm.InitializeMetrics)
	ctx := testCtx(t)
	if _, err := env.call(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.call(ctx, "b"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("second request = %v, want rate limited", err)
	}
	out := scrape(t, f.reg)
	want := `grpc_server_handled_total{grpc_code="ResourceExhausted",grpc_method="Echo",grpc_service="test.Echo",grpc_type="unary"} 1`
	if !strings.Contains(out, want) {
		t.Fatalf("metrics lack %q", want)
	}
}

// Only ranges that will read Pebble pre-grow their stack: a single key at
// the newest revision is served from mvcc's latest-version cache.
func TestReadsEngine(t *testing.T) {
	for _, tt := range []struct {
		req  any
		want bool
	}{
		{&pb.RangeRequest{Key: []byte("a")}, false},
		{&pb.RangeRequest{Key: []byte("a"), Serializable: true, Limit: 1}, false},
		{&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("b")}, true},
		{&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}, true},
		{&pb.RangeRequest{Key: []byte("a"), Revision: 5}, true},
		{"not a range request", true},
	} {
		if got := readsEngine(tt.req); got != tt.want {
			t.Errorf("readsEngine(%v) = %v, want %v", tt.req, got, tt.want)
		}
	}
}

func TestGrowStackPassesThrough(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "v")
	wantErr := status.Error(codes.Aborted, "x")
	for _, method := range []string{rangeMethod, "/etcdserverpb.KV/Put"} {
		resp, err := GrowStackUnary(ctx, "req", &grpc.UnaryServerInfo{FullMethod: method}, func(c context.Context, req any) (any, error) {
			if c.Value(key{}) != "v" || req != "req" {
				t.Errorf("%s: handler got ctx value %v, req %v", method, c.Value(key{}), req)
			}
			return "resp", wantErr
		})
		if resp != "resp" || err != wantErr {
			t.Fatalf("%s: GrowStackUnary = %v, %v", method, resp, err)
		}
	}
}
