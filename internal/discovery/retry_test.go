package discovery

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestBackoffIsEtcds: 2 s doubling to 256 s at the eighth retry in a row,
// then constant.
func TestBackoffIsEtcds(t *testing.T) {
	want := []time.Duration{2, 4, 8, 16, 32, 64, 128, 256, 256, 256}
	for i, w := range want {
		if got := Backoff(uint(i + 1)); got != w*time.Second {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w*time.Second)
		}
	}
	if got := Backoff(maxRetries); got != 256*time.Second {
		t.Errorf("Backoff(maxRetries) = %v, want 256s", got)
	}
}

// recordingClock returns from Sleep at once, records each duration, and
// cancels the join after stopAfter sleeps.
type recordingClock struct {
	slept     []time.Duration
	stopAfter int
	cancel    context.CancelFunc
}

func (c *recordingClock) Sleep(ctx context.Context, d time.Duration) error {
	c.slept = append(c.slept, d)
	if len(c.slept) >= c.stopAfter {
		c.cancel()
	}
	return ctx.Err()
}

// TestJoinRetriesAnUnreachableService: with nothing listening at the
// endpoint, Join does not fail: it retries the cluster status check with
// etcd's back-off, logging each retry as etcd does, until its context ends
// (SIGTERM at start).
func TestJoinRetriesAnUnreachableService(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := l.Addr().String()
	_ = l.Close() // connections are refused from now on

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := &recordingClock{stopAfter: 6, cancel: cancel}
	core, logs := observer.New(zap.WarnLevel)
	done := make(chan error, 1)
	go func() {
		_, err := Join(ctx, Config{Endpoints: []string{endpoint}, Token: "t", InsecureTransport: true,
			DialTimeout: time.Second, RequestTimeout: 100 * time.Millisecond, Clock: clk}, 1, "m=http://127.0.0.1:1", zap.New(core))
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Join did not return 30 s after its context ended")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Join returned %v, want the context's cancellation", err)
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, 64 * time.Second}
	if !slices.Equal(clk.slept, want) {
		t.Errorf("back-off %v, want %v", clk.slept, want)
	}
	retries := logs.FilterMessage("retry connecting to discovery service").All()
	if len(retries) != len(want) {
		t.Fatalf("%d retry warnings, want %d: %v", len(retries), len(want), logs.All())
	}
	for i, e := range retries {
		f := e.ContextMap()
		if f["reason"] != "cluster status check" || f["backoff"] != want[i] {
			t.Errorf("retry %d logged %v, want reason \"cluster status check\" and back-off %v", i+1, f, want[i])
		}
	}
	if n := logs.FilterMessage("failed to get cluster size from discovery service").Len(); n != len(want) {
		t.Errorf("%d failed size reads logged, want %d", n, len(want))
	}
}
