package storage

import (
	"context"
	"errors"
)

// ErrNotFound is returned by Get when the key does not exist.
var ErrNotFound = errors.New("storage: key not found")

// ErrClosed is returned by operations on a closed engine, batch or snapshot.
var ErrClosed = errors.New("storage: closed")

// Reader is a consistent read view: the engine itself (latest committed
// state) or a Snapshot (a fixed point in time).
type Reader interface {
	// Get returns a copy of the value stored at key, or ErrNotFound.
	Get(key []byte) ([]byte, error)
	// NewIter returns an iterator over [opts.LowerBound, opts.UpperBound).
	// The iterator sees one consistent point-in-time view: writes committed
	// after it was created are not visible to it.
	NewIter(opts IterOptions) (Iterator, error)
}

// IterOptions bound an iteration. A nil bound means unbounded on that side.
type IterOptions struct {
	LowerBound []byte // inclusive
	UpperBound []byte // exclusive
}

// Iterator walks keys in ascending byte order; it can move both ways.
// Key and Value are valid only until the next positioning call; callers
// that keep them must copy.
type Iterator interface {
	First() bool
	Last() bool
	// SeekGE positions at the first key >= key.
	SeekGE(key []byte) bool
	// SeekLT positions at the last key < key.
	SeekLT(key []byte) bool
	Next() bool
	Prev() bool
	Valid() bool
	Key() []byte
	Value() []byte
	// Error returns the first error the iterator met, if any.
	Error() error
	Close() error
}

// PrefixSeeker is implemented by iterators that can seek within the keys
// sharing key's MVCCPrefixLen prefix more cheaply than SeekGE, by skipping
// tables whose filter says the prefix is absent. It positions like SeekGE
// but may report false (or land past the prefix) when no key with the
// prefix exists; callers check the prefix of the key they land on.
type PrefixSeeker interface {
	SeekPrefixGE(key []byte) bool
}

// Batch collects writes that commit atomically: all of them or none become
// visible, and a crash never leaves part of a batch behind.
type Batch interface {
	// Set and Delete copy their arguments; callers may reuse the slices.
	Set(key, value []byte) error
	Delete(key []byte) error
	// DeleteRange deletes every key in [start, end).
	DeleteRange(start, end []byte) error
	// Count is the number of operations staged so far.
	Count() int
	// Commit applies the batch. With sync, it returns only after the batch
	// (and every batch committed before it) is durable on stable storage.
	Commit(sync bool) error
	// Close releases the batch; a batch that was not committed is dropped.
	Close() error
}

// Snapshot is a Reader fixed at the moment it was taken.
type Snapshot interface {
	Reader
	Close() error
}

// Usage describes how much space the engine takes.
type Usage struct {
	// SizeBytes is the total size of the engine's files (what the disk holds).
	SizeBytes int64
	// LiveBytes estimates the bytes holding live data (what the disk would
	// hold after every obsolete version were reclaimed).
	LiveBytes int64
}

// Engine is an ordered, durable key-value store. Keys written are never
// empty: every key of the schema has a prefix, and Pebble's invariant
// checks (on in race builds) misjudge an empty user key at the start of a
// block, so the conformance suite does not write one. An empty key as a
// bound (scans, range deletions) is fine.
type Engine interface {
	Reader
	NewBatch() Batch
	NewSnapshot() Snapshot
	// Checkpoint writes a consistent, openable copy of the engine's current
	// state into dir, which must not exist yet.
	Checkpoint(dir string) error
	// Sync makes every committed batch durable.
	Sync() error
	// CompactAll rewrites the whole key space so that the space held by
	// deleted and overwritten keys returns to the file system (what etcd's
	// defragmentation does for bbolt). Reads and writes go on meanwhile.
	// Cancelling ctx stops the work not yet started; what is done stays.
	CompactAll(ctx context.Context) error
	// NewIngestWriter creates the file path on the operating system's file
	// system (it must not exist yet; its directory must be on the engine's
	// file system) for Ingest. Once ingested, the file replaces every key
	// in [start, end) by the pairs written to it, end being given to
	// Finish. start must not be empty.
	NewIngestWriter(path string, start []byte) (IngestWriter, error)
	// Ingest makes the files of finished IngestWriters part of the engine
	// atomically: after a crash, either every file's span holds exactly the
	// file's pairs, or no file took effect. The files' spans must not
	// overlap. The files are left in place, so an ingestion a crash may
	// have interrupted can be repeated with the same files. Writes to the
	// spans committed before Ingest are replaced; later ones are not.
	Ingest(paths []string) error
	Usage() Usage
	Close() error
}

// IngestWriter builds one file of Engine.Ingest. It is not safe for
// concurrent use.
type IngestWriter interface {
	// Set adds a pair; keys must be strictly ascending and inside the
	// file's span. Set copies its arguments.
	Set(key, value []byte) error
	// Finish completes the file, whose span ends at end (exclusive; above
	// every key set), and makes it and its directory entry durable. The
	// writer is unusable afterwards.
	Finish(end []byte) error
	// Abort drops a file that was not finished (and removes it); after
	// Finish it does nothing.
	Abort() error
}
