package backend

import (
	"context"
	"sync"
	"time"
)

// deadlineGrain is how finely proposals' deadlines are rounded up: the
// proposals made within one grain share one timer.
const deadlineGrain = 100 * time.Millisecond

// deadlines hands out channels closed at a deadline, one per grain of
// deadline time, so that a write costs a map lookup instead of a timer
// context of its own (creating and cancelling one was about 4 % of a
// write's CPU under 1000 clients).
type deadlines struct {
	mu      sync.Mutex                // guards buckets
	buckets map[int64]*deadlineBucket // by deadline in grains since the epoch
}

type deadlineBucket struct {
	at   time.Time
	done chan struct{}
}

// after returns a bucket closed at or up to one grain after now + d.
func (ds *deadlines) after(d time.Duration) *deadlineBucket {
	k := time.Now().Add(d).UnixNano()/int64(deadlineGrain) + 1
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if b := ds.buckets[k]; b != nil {
		return b
	}
	if ds.buckets == nil {
		ds.buckets = map[int64]*deadlineBucket{}
	}
	b := &deadlineBucket{at: time.Unix(0, k*int64(deadlineGrain)), done: make(chan struct{})}
	ds.buckets[k] = b
	time.AfterFunc(time.Until(b.at), func() {
		ds.mu.Lock()
		delete(ds.buckets, k)
		ds.mu.Unlock()
		close(b.done)
	})
	return b
}

// bucketCtx is the context a proposal hands to raft's Propose in place of
// the request's: its Done is the deadline bucket's. raft only waits on Done
// (while no leader accepts proposals) and reads Err, and creates no context
// of its own from it, so bucketCtx carries no values; the request itself
// still waits on its own context too (Backend.await), so a client's cancel
// ends the request at once, and the proposal's wait at the bucket. Being a
// single pointer, it becomes a context.Context without an allocation.
type bucketCtx struct {
	b *deadlineBucket
}

func (c bucketCtx) Deadline() (time.Time, bool) { return c.b.at, true }
func (c bucketCtx) Done() <-chan struct{}       { return c.b.done }
func (c bucketCtx) Err() error {
	select {
	case <-c.b.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
func (c bucketCtx) Value(any) any { return nil }
