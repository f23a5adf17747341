// Package raftsnap ships the state machine to a follower that fell behind
// the leader's compacted Raft log, and installs what it receives.
//
// The state machine is the storage engine itself, so a Raft snapshot is an
// image of every replicated key (everything but the Raft log records, the
// staging area and this member's own ID) read from one engine snapshot,
// together with the applied index, term and ConfState that the same engine
// snapshot records. The image is a stream of CRC-32C checked chunks, so
// neither side ever holds more than a chunk in memory, whatever the size of
// the data set.
//
// The receiver first stages the image under the s/ prefix: a crash then
// leaves the old state untouched and the staging is discarded at restart.
// Installation writes a marker (r/i) durably, replaces the live keys with
// the staged ones and finally, in one synced batch, drops the staging,
// records the snapshot in the Raft log and removes the marker. A restart
// that finds the marker redoes the replacement (it is idempotent) before
// anything else reads the engine. See docs/adr/0004-raft-snapshots.md.
package raftsnap
