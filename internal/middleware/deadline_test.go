package middleware

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

// waitDone fails the test unless ctx's Done closes within a bounded time.
func waitDone(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after 10 s")
	}
}

func closed(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// TestLazyDeadlineUnwatched: a request that never waits gets no real
// context (no timer), sees its parent's values and the deadline, and Err
// tells the time by the clock.
func TestLazyDeadlineUnwatched(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "v")
	c, release := withLazyDeadline(parent, time.Hour)
	defer release()
	if dl, ok := c.Deadline(); !ok || time.Until(dl) < 59*time.Minute {
		t.Fatalf("Deadline() = %v, %v; want about an hour from now", dl, ok)
	}
	if c.Value(ctxKey{}) != "v" {
		t.Fatalf("parent's value lost")
	}
	if err := c.Err(); err != nil {
		t.Fatalf("Err() = %v before the deadline", err)
	}
	if c.real.Load() != nil {
		t.Fatal("armed (a timer made) although nobody waited")
	}

	past, release2 := withLazyDeadline(parent, -time.Second)
	defer release2()
	if err := past.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err() past the deadline = %v", err)
	}
	if !closed(past) || !errors.Is(past.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(past), context.DeadlineExceeded) {
		t.Fatalf("after Err said DeadlineExceeded: Done closed %v, Err %v, Cause %v", closed(past), past.Err(), context.Cause(past))
	}
}

// TestLazyDeadlineWatched: waiting on Done arms the deadline, which then
// ends the context by itself, with context's errors and cause.
func TestLazyDeadlineWatched(t *testing.T) {
	c, release := withLazyDeadline(context.Background(), 20*time.Millisecond)
	defer release()
	waitDone(t, c)
	if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(c), context.DeadlineExceeded) {
		t.Fatalf("Err %v, Cause %v; want DeadlineExceeded", c.Err(), context.Cause(c))
	}
}

// TestLazyDeadlineParentCanceled: the parent's cancellation reaches the
// context armed or not.
func TestLazyDeadlineParentCanceled(t *testing.T) {
	for _, watch := range []bool{false, true} {
		parent, cancel := context.WithCancel(context.Background())
		c, release := withLazyDeadline(parent, time.Hour)
		if watch {
			_ = c.Done()
		}
		cancel()
		if watch {
			waitDone(t, c)
		}
		if !errors.Is(c.Err(), context.Canceled) || !closed(c) {
			t.Fatalf("watched=%v: after the parent's cancel Err %v, Done closed %v", watch, c.Err(), closed(c))
		}
		release()
	}
}

// TestLazyDeadlineRelease: the request's end cancels the context, whether
// it was armed before or after.
func TestLazyDeadlineRelease(t *testing.T) {
	c, release := withLazyDeadline(context.Background(), time.Hour)
	done := c.Done()
	release()
	select {
	case <-done:
	default:
		t.Fatal("armed context not ended by release")
	}
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err() = %v after release", c.Err())
	}

	c2, release2 := withLazyDeadline(context.Background(), time.Hour)
	release2()
	if !errors.Is(c2.Err(), context.Canceled) || !closed(c2) {
		t.Fatalf("unarmed context after release: Err %v, Done closed %v", c2.Err(), closed(c2))
	}
}

// TestLazyDeadlineChildren: contexts derived from it end with it, and a
// context.AfterFunc on it runs when it ends.
func TestLazyDeadlineChildren(t *testing.T) {
	c, release := withLazyDeadline(context.Background(), 20*time.Millisecond)
	defer release()
	child, cancel := context.WithCancel(c)
	defer cancel()
	ran := make(chan struct{})
	context.AfterFunc(c, func() { close(ran) })
	waitDone(t, child)
	if !errors.Is(child.Err(), context.DeadlineExceeded) {
		t.Fatalf("child Err() = %v", child.Err())
	}
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("AfterFunc did not run after 10 s")
	}
}
