package middleware

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lazyDeadline is the request timeout's context: a deadline whose
// context.WithDeadline (a runtime timer, a registration with the parent) is
// made only when somebody waits on it.
//
// Why: context.WithTimeout for every request was about 6 % of the server's
// CPU for serializable ranges from 1000 clients, answered from memory,
// where nothing ever waited on the deadline. Code that can wait — a
// read-index wait, a response-budget wait, a child context — calls Done (or
// context.AfterFunc, which a child context uses), and gets the real
// context from then on; code that only checks Err gets the deadline
// compared with the clock.
//
// Context's rules hold: Err is nil until Done is closed and the same error
// from then on, because an Err that found the context ended and a later
// Done agree (a context.WithDeadline made after the deadline or on an
// ended parent is born ended), and the release function ends it with
// context.Canceled either way.
type lazyDeadline struct {
	context.Context // the parent: values; its cancellation is seen through Err/Done
	deadline        time.Time

	// mu orders arming with releasing: whichever comes second cancels.
	mu       sync.Mutex
	real     atomic.Pointer[armed] // stored once, under mu: nil until someone waits
	released atomic.Bool           // set under mu: the request ended
}

// armed is the real context and its cancel function.
type armed struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// withLazyDeadline returns ctx bounded by d from now and the function that
// must be called when the request ends.
func withLazyDeadline(ctx context.Context, d time.Duration) (*lazyDeadline, func()) {
	c := &lazyDeadline{Context: ctx, deadline: time.Now().Add(d)}
	return c, c.release
}

// arm returns the real context, making it on first use.
func (c *lazyDeadline) arm() context.Context {
	if a := c.real.Load(); a != nil {
		return a.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.real.Load()
	if a == nil {
		a = new(armed)
		a.ctx, a.cancel = context.WithDeadline(c.Context, c.deadline)
		if c.released.Load() {
			a.cancel()
		}
		c.real.Store(a)
	}
	return a.ctx
}

func (c *lazyDeadline) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.released.Store(true)
	if a := c.real.Load(); a != nil {
		a.cancel()
	}
}

// Deadline implements context.Context.
func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

// Done implements context.Context.
func (c *lazyDeadline) Done() <-chan struct{} { return c.arm().Done() }

// AfterFunc lets context.AfterFunc and the contexts derived from this one
// register with the real context, as they do with the standard library's
// own, instead of starting a goroutine each to wait on Done.
func (c *lazyDeadline) AfterFunc(f func()) func() bool { return context.AfterFunc(c.arm(), f) }

// Err implements context.Context. Unarmed, it answers what the real
// context would be born with: the parent's error, else DeadlineExceeded
// past the deadline, else Canceled once released.
func (c *lazyDeadline) Err() error {
	if a := c.real.Load(); a != nil {
		return a.ctx.Err()
	}
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	if c.released.Load() {
		return context.Canceled
	}
	return nil
}

// Value implements context.Context. Once armed, the real context answers,
// so that context.Cause and the contexts derived from this one find its
// cancellation as the standard library's own. (Unarmed, context.Cause
// reports the parent's cause: nil for a deadline that passed unwatched,
// whose Err is DeadlineExceeded; no unary path here uses Cause.)
func (c *lazyDeadline) Value(key any) any {
	if a := c.real.Load(); a != nil {
		return a.ctx.Value(key)
	}
	return c.Context.Value(key)
}
