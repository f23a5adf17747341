// Package raftnode drives a go.etcd.io/raft/v3 RawNode from one goroutine
// (docs/adr/0022-run-loop-owns-rawnode.md): it ticks the clock, steps the
// proposals queued while a Ready was persisted as one batch,
// persists each Ready through raftlog (one synced engine commit per Ready),
// sends messages through a Transport, hands committed entries (and snapshots
// received from the leader, which the apply loop installs before any later
// entry) to the apply loop in order, and serves linearizable reads with
// batched ReadIndex.
//
// It knows nothing of what the entries mean; the apply package does. That
// keeps the consensus plumbing testable with a simulated network and an
// injected clock.
package raftnode
