// Package raftwal keeps the Raft log — entries, the HardState and the
// compaction point — in append-only segment files, outside the storage
// engine.
//
// Why: with the log in Pebble every write went through the engine twice,
// once as its Raft entry (a synced commit, handed to Pebble's WAL writer)
// and once as the state machine's batch, and the entry was then flushed and
// compacted through the LSM only to be deleted (the profiles in
// docs/adr/0026-raft-log-in-its-own-files.md). Here the Ready loop writes a
// Ready's entries and HardState in one write and syncs them itself, once,
// with no hand-off to another goroutine, and they never enter the LSM.
//
// # Files
//
// A log is a directory of segments named %016x.wal after an increasing
// sequence number. Records are appended to the newest one; once it holds
// Options.SegmentBytes it is synced and the next one started. Every segment
// starts with the current HardState and compaction point, so that the
// older segments can be deleted (Compact) without losing either.
//
// # Records
//
//	crc    uint32, big-endian: CRC32-C of everything after it (length, type, payload)
//	length uint32, big-endian: bytes after the length field (type and payload), so at least 1
//	type   byte: the record type in the low 7 bits; the high bit marks the last record of a batch
//	payload
//
// A length of 0 ends a segment's data: segments are written with zeros
// ahead of the records (below), so that is where the data stops. Types:
//
//	entry      term (8, BE), index (8, BE), entry type (1), data — hand-written, no protobuf on the hot path
//	hardstate  the raftpb.HardState, proto.Marshal
//	compact    index (8, BE), term (8, BE): entries at or below index are gone
//	reset      index (8, BE), term (8, BE): every entry is gone, the log restarts after index
//
// The records of one Save (its entries, then its HardState) form a batch,
// written in one write call; its last record carries the batch flag. Replay
// applies a batch only once it has read all of it, so a crash that keeps
// part of an unsynced Save (the file system may keep any subset of the
// blocks written since the last sync) recovers the state before that Save
// or after it, never a mix: a HardState whose commit index points past the
// entries that came with it would stop raft from starting.
//
// # Replay
//
// Open reads every segment in order. An entry at an index at or below the
// last one replaces it and drops everything after it (raft's rule for a
// conflicting suffix: a new leader overwrote this member's uncommitted
// tail); an entry past the last one + 1 means the segments before were
// deleted after a compaction, and collecting starts again there, which the
// final compaction point must cover. A record that is cut, fails its
// checksum or has an impossible length ends the log if it is in the last
// segment (a write torn by a crash: it was not synced, so nobody was told
// it was durable); Open zeroes the file from there and appends after it.
// Anywhere else it is ErrCorrupt: a segment is synced before the next one
// is created, so an older segment cannot have lost its tail.
//
// # Zeroing ahead
//
// A synced Save ends in an fdatasync. When the write lands on blocks that
// were never written, or grows the file, that fdatasync also commits the
// file system's journal (the extents, the size), which on ext4 costs about
// as much as the data itself; over blocks already written and synced only
// the data goes out (internal/storage/pebble/zerowal.go,
// docs/adr/0024-zeroed-wal-tail.md). So a Save that would write past the
// zeroed part of the segment first writes zeros from there to a megabyte
// further (or to the end of its own write, if that is further), in the
// same call and before the same sync: the journal is paid about once per
// megabyte instead of at every Save. Zeros stop at Options.SegmentBytes,
// where the segment is sealed. It is done inline, not by a goroutine, so
// that the crash tests' file system sees the same writes at every run.
package raftwal
