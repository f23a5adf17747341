package clock

import (
	"sync"
	"time"
)

// Start is the time a Fake from NewFake shows first: fixed, so that a
// test's times (and anything derived from them, like a lease's expiry)
// are the same on every run.
var Start = time.Unix(1_700_000_000, 0)

// Fake is a clock that moves only by Advance or Set. It is safe for
// concurrent use: the code under test may read it from its own goroutines.
type Fake struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

// NewFake returns a Fake showing Start.
func NewFake() *Fake { return &Fake{t: Start} }

// NewFakeAt returns a Fake showing t.
func NewFakeAt(t time.Time) *Fake { return &Fake{t: t} }

// Now returns the fake time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the fake time forward by d.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set makes the fake time t.
func (c *Fake) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
