package apply

import (
	"bytes"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
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
//
// A waiter may also hold the request it proposed and the exact bytes of its
// entry, so that the proposing member applies the request it already has
// instead of decoding the entry again (Proposed).
type Wait struct {
	mu sync.Mutex // guards m
	m  map[uint64]waiter
}

// waiter is one registered proposal. req and data never change once
// registered: the proposer does not touch req after handing it over.
type waiter struct {
	ch   chan Result
	req  *pb.InternalRaftRequest // nil: not kept
	data []byte                  // req's encoding, exactly as proposed
}

// NewWait returns an empty registry.
func NewWait() *Wait { return &Wait{m: map[uint64]waiter{}} }

// Register returns the channel that will receive id's result.
func (w *Wait) Register(id uint64) <-chan Result {
	return w.RegisterProposal(id, nil, nil, nil)
}

// RegisterProposal is Register for a proposal whose entry data is exactly
// data, the encoding of req. The applier may then apply req itself when it
// meets an entry with those bytes; the caller must not modify req or data
// afterwards. ch, if not nil, is the channel to deliver the result on: an
// empty one with a buffer of one, which the caller may reuse once it has
// received the result from it (Trigger has then forgotten it); nil makes
// a new one.
func (w *Wait) RegisterProposal(id uint64, req *pb.InternalRaftRequest, data []byte, ch chan Result) <-chan Result {
	if ch == nil {
		ch = make(chan Result, 1)
	}
	w.mu.Lock()
	w.m[id] = waiter{ch: ch, req: req, data: data}
	w.mu.Unlock()
	return ch
}

// Proposed returns the request registered for id if its bytes are exactly
// data, nil otherwise: a member that did not propose the entry, a proposal
// that gave up, a restart's replay, or another entry reusing id all get nil
// and must decode data.
func (w *Wait) Proposed(id uint64, data []byte) *pb.InternalRaftRequest {
	w.mu.Lock()
	p, ok := w.m[id]
	w.mu.Unlock()
	// Outside the lock: p.data never changes, and on the proposer the
	// entry usually shares p.data's array, which bytes.Equal sees at once.
	if !ok || p.req == nil || !bytes.Equal(p.data, data) {
		return nil
	}
	return p.req
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
	p, ok := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ok {
		p.ch <- r
	}
}
