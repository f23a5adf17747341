package pebble

import (
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

const (
	// zeroChunk is how much of a log the zeroing writes at a time. Each
	// chunk is written under the file's lock, so it bounds how long a log
	// write can wait for the zeroing (a 256 KiB copy into the page cache
	// takes tens of microseconds).
	zeroChunk = 256 << 10
	// zeroAhead is how far past Pebble's writes the zeroing keeps a log
	// zeroed; it adds chunks once less than half of it is left, until it is
	// there again. So a log holds fewer than zeroAhead+zeroChunk zeros past
	// its records when Pebble moves to the next one (the store's reported
	// size counts them).
	zeroAhead = 4 * zeroChunk
)

// zeroedWALFS keeps the next megabyte of every new Pebble write-ahead log
// written with zeros and synced, ahead of Pebble's own writes.
//
// Why: a synced commit ends in an fdatasync of the log. When the log's
// blocks were never written (Pebble preallocates them with fallocate, which
// leaves them "unwritten"), or the write grows the file, that fdatasync must
// also commit the file system's journal (the extents and the size change),
// which on ext4 costs about as much again as the data itself: the harness
// measures 0.19 ms for a synced 4 KiB append against 0.09 ms for the same
// write over blocks already written (docs/benchmarks.md, "Floors"). Pebble's
// recycled logs are overwritten in place and pay only the data; a new log,
// which is what a store writes after it opens until memtables have been
// flushed and their logs recycled, paid the journal at every commit. Zeroing
// ahead gives a new log the recycled log's cost; the zeroing's own syncs
// pay the journal once per chunk, off the commit path.
//
// Replaying a log that ends in zeros is Pebble's ordinary case: it stops at
// a zeroed chunk as it stops at the old records past the end of a recycled
// log (record.ErrZeroedChunk; docs/adr/0024-zeroed-wal-tail.md, and
// TestZeroedWALSurvivesCrashes for a power loss).
type zeroedWALFS struct {
	vfs.FS
	// inline zeroes in the caller's goroutine (Create, then Write) instead
	// of a goroutine of the file's: tests on Pebble's crash-cloning memory
	// file system need the same files at every run.
	inline bool
}

// Create implements vfs.FS. Only new write-ahead logs (Pebble names them
// NNNNNN.log) are zeroed; recycled ones are reopened with ReuseForWrite and
// already hold written blocks.
func (fs zeroedWALFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	z := &zeroingFile{
		File:   f,
		inline: fs.inline,
		buf:    make([]byte, zeroChunk),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if z.inline {
		z.fill()
		close(z.done)
	} else {
		go z.run()
	}
	return z, nil
}

// Unwrap lets Pebble reach the file system below (as noSyncFS does).
func (fs zeroedWALFS) Unwrap() vfs.FS { return fs.FS }

// zeroingFile is a new log whose next zeroAhead bytes are kept zeroed.
// Pebble writes a log sequentially through Write, from offset 0.
type zeroingFile struct {
	vfs.File
	inline bool

	// mu orders Pebble's writes with the zeroing's, so that zeros never go
	// over a byte Pebble has written: the zeroing writes only at or past
	// zeroed, which is never below written.
	mu      sync.Mutex
	written int64  // guarded by mu: bytes Pebble has written (its offset)
	zeroed  int64  // guarded by mu: [0, zeroed) is written, by Pebble or with zeros
	failed  bool   // guarded by mu: a zeroing write or sync failed; no more zeroing
	buf     []byte // guarded by mu: a chunk of zeros

	wake     chan struct{} // Write asks the goroutine for more zeros (never blocks)
	stop     chan struct{} // closed by Close
	stopOnce sync.Once
	done     chan struct{} // closed when the zeroing goroutine has returned
}

// run is the zeroing goroutine: it fills, then waits for Pebble's writes
// to use up half of the zeros, until Close.
func (z *zeroingFile) run() {
	defer close(z.done)
	for {
		z.fill()
		select {
		case <-z.stop:
			return
		case <-z.wake:
		}
	}
}

// fill zeroes chunks, each written and then synced, until zeroAhead bytes
// past Pebble's writes are zeroed. An error ends the zeroing for good: the
// file is then an ordinary log whose commits pay the journal, and a failing
// disk shows itself to Pebble through its own writes and syncs.
func (z *zeroingFile) fill() {
	for {
		z.mu.Lock()
		if z.failed || z.zeroed-z.written >= zeroAhead {
			z.mu.Unlock()
			return
		}
		clear(z.buf) // a file may change what it is given
		_, err := z.File.WriteAt(z.buf, z.zeroed)
		if err == nil {
			z.zeroed += zeroChunk
		}
		z.failed = err != nil
		z.mu.Unlock()
		if err != nil {
			return
		}
		if err := z.File.SyncData(); err != nil {
			z.mu.Lock()
			z.failed = true
			z.mu.Unlock()
			return
		}
		select {
		case <-z.stop:
			return
		default:
		}
	}
}

// Write implements vfs.File.
func (z *zeroingFile) Write(p []byte) (int, error) {
	z.mu.Lock()
	n, err := z.File.Write(p)
	z.written += int64(n)
	z.zeroed = max(z.zeroed, z.written)
	low := !z.failed && z.zeroed-z.written < zeroAhead/2
	z.mu.Unlock()
	if low {
		if z.inline {
			z.fill()
		} else {
			select {
			case z.wake <- struct{}{}:
			default: // already asked
			}
		}
	}
	return n, err
}

// Close implements vfs.File: the zeroing stops before the file is closed.
func (z *zeroingFile) Close() error {
	z.stopOnce.Do(func() { close(z.stop) })
	<-z.done
	return z.File.Close()
}
