package lifecycle

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

type toggle struct {
	name string
	err  atomic.Pointer[error]
}

func (c *toggle) Name() string { return c.name }
func (c *toggle) Check(context.Context) error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}
func (c *toggle) fail(err error) { c.err.Store(&err) }
func (c *toggle) pass()          { c.err.Store(nil) }

func serveHealth(t *testing.T, h *Health) healthpb.HealthClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, h.Server())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func status1(t *testing.T, c healthpb.HealthClient, svc string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
	if err != nil {
		t.Fatalf("Check(%q): %v", svc, err)
	}
	return resp.GetStatus()
}

func TestHealthTransitionsAndWatch(t *testing.T) {
	h := NewHealth(HealthConfig{Services: []string{"etcdserverpb.KV"}})
	storage := &toggle{name: "storage"}
	raft := &toggle{name: "raft"}
	h.Register(storage)
	h.Register(raft)
	c := serveHealth(t, h)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := c.Watch(ctx, &healthpb.HealthCheckRequest{Service: ""})
	if err != nil {
		t.Fatal(err)
	}
	next := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		resp, err := w.Recv()
		if err != nil {
			t.Fatalf("Watch.Recv: %v", err)
		}
		if resp.GetStatus() != want {
			t.Fatalf("Watch got %v, want %v", resp.GetStatus(), want)
		}
	}

	next(healthpb.HealthCheckResponse_NOT_SERVING) // not ready before the first evaluation
	h.Evaluate(ctx)
	next(healthpb.HealthCheckResponse_SERVING)
	if !h.Serving() || status1(t, c, "etcdserverpb.KV") != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("not SERVING after a passing evaluation")
	}

	raft.fail(errors.New("no leader"))
	res := h.Evaluate(ctx)
	next(healthpb.HealthCheckResponse_NOT_SERVING)
	if len(res) != 2 || res[0].Name != "raft" || res[0].Healthy() || !res[1].Healthy() {
		t.Fatalf("results = %+v, want raft failing and storage healthy", res)
	}
	if got := h.Results(); len(got) != 2 || got[0].Err == nil || !errors.Is(got[0].Err, *raft.err.Load()) {
		t.Fatalf("Results() = %+v", got)
	}
	if status1(t, c, "etcdserverpb.KV") != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("mirrored service not NOT_SERVING")
	}

	raft.pass()
	h.Evaluate(ctx)
	next(healthpb.HealthCheckResponse_SERVING)

	h.SetNotServing()
	next(healthpb.HealthCheckResponse_NOT_SERVING)
	h.Evaluate(ctx) // all checks pass, but shutdown is permanent
	if h.Serving() || status1(t, c, "") != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Evaluate after SetNotServing flipped the status back")
	}
	for _, r := range h.Results() {
		if !errors.Is(r.Err, ErrShuttingDown) {
			t.Fatalf("result %+v after SetNotServing", r)
		}
	}

	// Unknown services answer NotFound, as etcd's does.
	_, err = c.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Check(unknown) = %v, want NotFound", err)
	}
}

func TestHealthCheckTimeoutAndPanic(t *testing.T) {
	h := NewHealth(HealthConfig{CheckTimeout: 20 * time.Millisecond})
	h.Register(CheckerFunc("slow", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }))
	h.Register(CheckerFunc("panicky", func(context.Context) error { panic("bad checker") }))
	res := h.Evaluate(context.Background())
	if len(res) != 2 || !errors.Is(res[1].Err, context.DeadlineExceeded) || res[0].Err == nil {
		t.Fatalf("results = %+v", res)
	}
	if h.Serving() {
		t.Fatalf("serving with failing checkers")
	}
}

func TestHealthRunUsesTicker(t *testing.T) {
	ticks := make(chan time.Time)
	var stopped atomic.Bool
	h := NewHealth(HealthConfig{NewTicker: func(time.Duration) (<-chan time.Time, func()) {
		return ticks, func() { stopped.Store(true) }
	}})
	calls := make(chan struct{}, 10)
	h.Register(CheckerFunc("c", func(context.Context) error { calls <- struct{}{}; return nil }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	<-calls // immediate evaluation
	ticks <- time.Time{}
	<-calls // one per tick
	cancel()
	<-done
	if !stopped.Load() {
		t.Fatalf("Run did not stop its ticker")
	}
	if !h.Serving() {
		t.Fatalf("not serving after passing evaluations")
	}
}

// TestHealthSuspend: Suspend reports NOT_SERVING over a healthy verdict,
// nested calls hold it until the last Resume, evaluations meanwhile do not
// lift it, and Resume restores the checkers' verdict (NOT_SERVING if they
// failed meanwhile); after SetNotServing, Resume does not revive it.
func TestHealthSuspend(t *testing.T) {
	h := NewHealth(HealthConfig{Services: []string{"etcdserverpb.KV"}})
	storage := &toggle{name: "storage"}
	h.Register(storage)
	c := serveHealth(t, h)
	ctx := context.Background()
	want := func(step string, st healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for _, svc := range []string{"", "etcdserverpb.KV"} {
			if got := status1(t, c, svc); got != st {
				t.Fatalf("%s: %q is %v, want %v", step, svc, got, st)
			}
		}
	}
	h.Resume() // without Suspend: nothing
	h.Evaluate(ctx)
	want("healthy", healthpb.HealthCheckResponse_SERVING)
	h.Suspend("defrag is active")
	h.Suspend("defrag is active")
	want("suspended", healthpb.HealthCheckResponse_NOT_SERVING)
	h.Evaluate(ctx)
	want("evaluated while suspended", healthpb.HealthCheckResponse_NOT_SERVING)
	h.Resume()
	want("one of two resumed", healthpb.HealthCheckResponse_NOT_SERVING)
	h.Resume()
	want("resumed", healthpb.HealthCheckResponse_SERVING)

	h.Suspend("defrag is active")
	storage.fail(errors.New("disk gone"))
	h.Evaluate(ctx)
	h.Resume()
	want("resumed after a failed check", healthpb.HealthCheckResponse_NOT_SERVING)
	storage.pass()
	h.Evaluate(ctx)
	want("recovered", healthpb.HealthCheckResponse_SERVING)

	h.Suspend("defrag is active")
	h.SetNotServing()
	h.Resume()
	h.Evaluate(ctx)
	want("shut down", healthpb.HealthCheckResponse_NOT_SERVING)
}
