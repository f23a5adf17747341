package middleware

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/metastore/metastore/internal/failpoint"
)

func TestRecoverUnaryKeepsServing(t *testing.T) {
	reg := prometheus.NewRegistry()
	var panicked []string
	rec, err := NewRecoverer(RecoverConfig{Registerer: reg, OnPanic: func(m string, _ any, stack []byte) {
		if len(stack) > 0 {
			panicked = append(panicked, m)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	gm, err := NewGRPCMetrics(MetricsConfig{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	us, ss := Chain(ChainOptions{Recover: rec, Metrics: gm})
	env := startServer(t, us, ss, nil, nil)
	ctx := testCtx(t)

	// A request in flight while another panics must still succeed.
	blocked := make(chan error, 1)
	go func() { _, err := env.call(ctx, "block"); blocked <- err }()
	<-env.svc.entered

	_, err = env.call(ctx, "panic")
	if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != "internal server error: panic recovered" {
		t.Fatalf("panicking request = %v, want Internal panic recovered", err)
	}
	close(env.svc.release)
	if err := <-blocked; err != nil {
		t.Fatalf("concurrent request failed: %v", err)
	}
	if got, err := env.call(ctx, "after"); err != nil || got != "after" {
		t.Fatalf("request after the panic = %q, %v", got, err)
	}
	if rec.PanicCount() != 1 || len(panicked) != 1 || panicked[0] != echoMethod {
		t.Fatalf("PanicCount = %d, OnPanic calls = %v", rec.PanicCount(), panicked)
	}
	out := scrape(t, reg)
	for _, want := range []string{
		`metastore_panic_total{where="grpc"} 1`,
		// The inner recover lets the metrics see the panicked call as Internal.
		`grpc_server_handled_total{grpc_code="Internal",grpc_method="Echo",grpc_service="test.Echo",grpc_type="unary"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestRecoverStream(t *testing.T) {
	rec, err := NewRecoverer(RecoverConfig{})
	if err != nil {
		t.Fatal(err)
	}
	us, ss := Chain(ChainOptions{Recover: rec})
	env := startServer(t, us, ss, nil, nil)
	ctx := testCtx(t)
	st, err := env.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, streamMethod)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SendMsg(wrapperspb.Bytes([]byte("hi"))); err != nil {
		t.Fatal(err)
	}
	out := new(wrapperspb.BytesValue)
	if err := st.RecvMsg(out); err != nil || string(out.GetValue()) != "hi" {
		t.Fatalf("echo on stream = %q, %v", out.GetValue(), err)
	}
	if err := st.SendMsg(wrapperspb.Bytes([]byte("panic"))); err != nil {
		t.Fatal(err)
	}
	if err := st.RecvMsg(out); status.Code(err) != codes.Internal {
		t.Fatalf("stream after panic: %v, want Internal", err)
	}
	if _, err := env.call(ctx, "still-up"); err != nil {
		t.Fatalf("server down after a stream panic: %v", err)
	}
	if rec.PanicCount() != 1 {
		t.Fatalf("PanicCount = %d", rec.PanicCount())
	}
}

// TestRecoverLetsFailpointCrashThrough: a failpoint's panic stands for the
// member dying there, so the interceptors panic again with it instead of
// answering Internal (etcd's robustness suite kills a member in Defragment
// this way and waits for it to exit).
func TestRecoverLetsFailpointCrashThrough(t *testing.T) {
	rec, err := NewRecoverer(RecoverConfig{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	crash := failpoint.NewCrash("defragBeforeCopy", "boom")
	repanicked := func(call func()) (v any) {
		defer func() { v = recover() }()
		call()
		return nil
	}
	unary := rec.UnaryServerInterceptor()
	if v := repanicked(func() {
		_, _ = unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/m"},
			func(context.Context, any) (any, error) { panic(crash) })
	}); v != crash {
		t.Fatalf("unary: recovered %v, want the crash panicking on", v)
	}
	stream := rec.StreamServerInterceptor()
	if v := repanicked(func() {
		_ = stream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/m"},
			func(any, grpc.ServerStream) error { panic(crash) })
	}); v != crash {
		t.Fatalf("stream: recovered %v, want the crash panicking on", v)
	}
	if rec.PanicCount() != 0 {
		t.Fatalf("PanicCount = %d, want 0: a crash is not a recovered panic", rec.PanicCount())
	}
	// Any other panic is still recovered.
	if _, err := unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/m"},
		func(context.Context, any) (any, error) { panic("bug") }); err != ErrPanicRecovered {
		t.Fatalf("ordinary panic: err = %v, want ErrPanicRecovered", err)
	}
}
