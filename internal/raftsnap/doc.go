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
// The receiver turns the stream into files the engine can ingest (Pebble
// sstables, storage.Engine.NewIngestWriter) in a staging directory of its
// own, checking every chunk's CRC, the key order and the totals, while the
// live state stays untouched: a crash then leaves the old state and the
// staging is discarded at restart. The files replace the replicated spans
// between them, each starting with a range deletion of its part, and a
// COMPLETE file written last says they are all there. Installation writes
// a marker (r/i) durably, ingests the files in one atomic step and finally,
// in one synced batch, records the snapshot in the Raft log and removes the
// marker. A restart that finds the marker ingests the files again (the
// result is the same) before anything else reads the engine. Every image
// byte is written once, and the live state changes in one step. See
// docs/adr/0004-raft-snapshots.md and docs/adr/0017-snapshot-install-by-ingestion.md.
package raftsnap
