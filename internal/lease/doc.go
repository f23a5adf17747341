// Package lease keeps etcd's leases: TTLs granted through Raft, keys attached
// to them, expiry timed by the leader only, keep-alives, and checkpoints of
// the remaining TTL so a restart or a leader change does not reset it.
//
// State lives in two places. The engine holds the truth, written in the apply
// batch: l/<id> records (granted TTL, last checkpointed remaining TTL) and
// L/<id><key> attachments. Memory holds each lease's TTL and, on the primary
// (the leader, once it has applied every entry of earlier terms), its expiry
// time. Attached keys are not kept in memory: they are read from the engine
// when a lease is revoked or listed, so the number of leased keys is not
// bounded by RAM.
//
// Writes are staged. The apply goroutine calls StageGrant, StageRevoke,
// StageCheckpoint, Attach and Detach with its batch; they write into the batch
// and record the in-memory change in a staging area that later calls of the
// same batch see (a put may attach to a lease granted two entries earlier in
// the same batch). Commit, called once the batch is durable, makes them
// visible to readers; Discard drops them. Only the apply goroutine stages.
//
// The lessor never deletes anything on its own and never reads the wall
// clock directly: time comes from an injected Clock, and expired leases are
// handed out (Expired) for the leader to revoke through Raft, a bounded batch
// per tick as etcd rate-limits revocations (RunExpiry).
package lease
