package backend

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestDeadlineBuckets: a bucket closes no earlier than asked and at most a
// grain later, requests in the same grain share it, a closed bucket leaves
// the map, and its context reports the deadline.
func TestDeadlineBuckets(t *testing.T) {
	var ds deadlines
	start := time.Now()
	const d = 30 * time.Millisecond
	b := ds.after(d)
	if b.at.Before(start.Add(d)) || b.at.After(time.Now().Add(d+deadlineGrain)) {
		t.Fatalf("bucket at %v, want within a grain after %v", b.at.Sub(start), d)
	}
	if again := ds.after(d); again != b && again.at.Equal(b.at) {
		t.Fatal("two buckets for the same grain")
	}
	ctx := context.Context(bucketCtx{b})
	if n := testing.AllocsPerRun(10, func() { ctx = bucketCtx{b} }); n != 0 {
		t.Fatalf("bucketCtx costs %v allocations as a context.Context", n)
	}
	if dl, ok := ctx.Deadline(); !ok || !dl.Equal(b.at) {
		t.Fatalf("Deadline %v %v, want %v", dl, ok, b.at)
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("Err before the deadline: %v", err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("bucket never closed")
	}
	if now := time.Now(); now.Before(start.Add(d)) {
		t.Fatalf("closed after %v, before the %v asked", now.Sub(start), d)
	}
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err after the deadline: %v", err)
	}
	ds.mu.Lock()
	n := len(ds.buckets)
	ds.mu.Unlock()
	if n != 0 {
		// Only the bucket above (and possibly the second one, a grain
		// later) were made; the first must be gone once closed.
		ds.mu.Lock()
		_, still := ds.buckets[b.at.UnixNano()/int64(deadlineGrain)]
		ds.mu.Unlock()
		if still {
			t.Fatal("a closed bucket is still handed out")
		}
	}
}
