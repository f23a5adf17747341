package apply

import (
	"sync"
	"time"
)

// Result is the outcome of applying one proposed request.
type Result struct {
	Resp any
	Err  error
	// Physical, for a compaction, is closed once the old revisions are gone.
	Physical <-chan struct{}
	// Timing is when the entry's batch was applied, shared by the batch's
	// results; the proposer turns it into trace spans.
	Timing *Timing
}

// Timing holds the moments of one apply batch: when it reached the applier
// (its entries were committed), when its engine commit started and ended.
type Timing struct {
	Applying, Writing, Written time.Time
}

// Wait maps proposal IDs to the requests waiting for them. Only the member
// that proposed an entry has a waiter for it; every other member applies the
// entry and finds nobody to tell.
type Wait struct {
	mu sync.Mutex // guards m
	m  map[uint64]chan Result
}

// NewWait returns an empty registry.
func NewWait() *Wait { return &Wait{m: map[uint64]chan Result{}} }

// Register returns the channel that will receive id's result.
func (w *Wait) Register(id uint64) <-chan Result {
	ch := make(chan Result, 1)
	w.mu.Lock()
	w.m[id] = ch
	w.mu.Unlock()
	return ch
}

// Cancel forgets id (the requester gave up).
func (w *Wait) Cancel(id uint64) {
	w.mu.Lock()
	delete(w.m, id)
	w.mu.Unlock()
}

// Trigger delivers r to id's waiter, if any.
func (w *Wait) Trigger(id uint64, r Result) {
	w.mu.Lock()
	ch, ok := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ok {
		ch <- r
	}
}
