package middleware

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/clock"
)

func peerCtx(ip string) context.Context {
	return peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}})
}

func TestRateLimitPerClientTokenBucket(t *testing.T) {
	clk := clock.NewFakeAt(time.Unix(1000, 0))
	reg := prometheus.NewRegistry()
	rl, err := NewRateLimiter(RateLimitConfig{Rate: 2, Burst: 2, Now: clk.Now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ui := rl.UnaryServerInterceptor()
	call := func(ip string) error {
		_, err := ui(peerCtx(ip), nil, unaryInfo("/m"), func(context.Context, any) (any, error) { return nil, nil })
		return err
	}
	for i := range 2 {
		if err := call("127.0.0.1"); err != nil {
			t.Fatalf("request %d within burst: %v", i, err)
		}
	}
	err = call("127.0.0.1")
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || st.Message() != "etcdserver: too many requests" {
		t.Fatalf("over the rate = %v", err)
	}
	if err := call("127.0.0.2"); err != nil {
		t.Fatalf("other client limited by the first one's bucket: %v", err)
	}
	clk.Advance(500 * time.Millisecond) // one token at 2/s
	if err := call("127.0.0.1"); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	if err := call("127.0.0.1"); err == nil {
		t.Fatalf("second request after a one-token refill allowed")
	}
	if !contains(scrape(t, reg), "metastore_rate_limited_total 2") {
		t.Fatalf("rate-limited requests not counted")
	}

	// Streams take one token when they open.
	si := rl.StreamServerInterceptor()
	err = si(nil, fakeStream{ctx: peerCtx("127.0.0.1")}, &grpc.StreamServerInfo{FullMethod: "/s"},
		func(any, grpc.ServerStream) error { return nil })
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("stream open over the rate = %v", err)
	}
}

func TestRateLimitBoundedClients(t *testing.T) {
	clk := clock.NewFakeAt(time.Unix(1000, 0))
	rl, err := NewRateLimiter(RateLimitConfig{Rate: 1, Burst: 1, MaxClients: 3, IdleTTL: 10 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"} {
		rl.Allow(ip)
		clk.Advance(time.Millisecond)
	}
	if n := rl.Clients(); n != 3 {
		t.Fatalf("Clients = %d, want the bound 3", n)
	}
	// 10.0.0.5 is most recent and still limited; 10.0.0.1 was evicted.
	if rl.Allow("10.0.0.5") {
		t.Fatalf("recent client's bucket was lost")
	}
	clk.Advance(11 * time.Second)
	rl.Allow("10.0.0.9")
	if n := rl.Clients(); n != 1 {
		t.Fatalf("Clients = %d after the idle TTL, want 1", n)
	}
}

func TestRateLimitOff(t *testing.T) {
	rl, err := NewRateLimiter(RateLimitConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if !rl.Allow("x") {
			t.Fatalf("rate 0 limited a request")
		}
	}
	if rl.Clients() != 0 {
		t.Fatalf("disabled limiter kept state")
	}
	if us, ss := Chain(ChainOptions{RateLimit: rl}); len(us) != 1 || len(ss) != 0 { // the stack grower only
		t.Fatalf("disabled rate limiter installed in the chain")
	}
}

func TestClientKey(t *testing.T) {
	if got := ClientKey(peerCtx("127.0.0.1")); got != "127.0.0.1" {
		t.Fatalf("ClientKey = %q", got)
	}
	if got := ClientKey(context.Background()); got != "unknown" {
		t.Fatalf("ClientKey without peer = %q", got)
	}
}
