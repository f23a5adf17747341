package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/metastore/metastore/tests/framework"
)

// TestWriteWithoutQuorumTimesOut: a put from a client that set no deadline,
// to a member whose peers are gone, ends with etcd's "request timed out"
// after the request path's bound (5 s + 2 x election timeout = 6 s here),
// not never: proposals get no timer of their own (shared deadline buckets,
// internal/backend/deadline.go) and no default deadline from the limits
// interceptor.
func TestWriteWithoutQuorumTimesOut(t *testing.T) {
	ms := framework.StartCluster(t, 3, framework.Options{ExtraArgs: fastElection})
	c := ms[0].Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err := c.Put(ctx, "before", "quorum loss")
	cancel()
	check(t, "put with quorum", err)
	ms[1].Kill9()
	ms[2].Kill9()

	type result struct {
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		begin := time.Now()
		_, err := c.Put(context.Background(), "after", "quorum loss")
		done <- result{err, time.Since(begin)}
	}()
	select {
	case r := <-done:
		if !errors.Is(rpctypes.Error(r.err), rpctypes.ErrTimeout) {
			t.Fatalf("put without quorum: %v, want %v", r.err, rpctypes.ErrTimeout)
		}
		if r.took < 5*time.Second {
			t.Fatalf("put without quorum failed after %v, before the 6 s bound", r.took)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("put without quorum and without a client deadline did not end within 30 s")
	}
}
