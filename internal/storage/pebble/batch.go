package pebble

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/metastore/metastore/internal/storage"
)

// errCommitted is returned when a batch is written to or committed again
// after Commit: Pebble batches cannot be reused.
var errCommitted = errors.New("pebble: batch already committed")

type batch struct {
	e         *Engine
	b         *pebble.Batch
	err       error // sticky: the engine was closed when the batch was made
	committed bool
	closed    bool
}

var _ storage.Batch = (*batch)(nil)

func (b *batch) writable() error {
	switch {
	case b.closed:
		return storage.ErrClosed
	case b.err != nil:
		return b.err
	case b.committed:
		return errCommitted
	}
	return nil
}

func (b *batch) Set(key, value []byte) error {
	if err := b.writable(); err != nil {
		return err
	}
	if err := b.b.Set(key, value, nil); err != nil {
		return fmt.Errorf("pebble: batch set: %w", err)
	}
	return nil
}

func (b *batch) Delete(key []byte) error {
	if err := b.writable(); err != nil {
		return err
	}
	if err := b.b.Delete(key, nil); err != nil {
		return fmt.Errorf("pebble: batch delete: %w", err)
	}
	return nil
}

// DeleteRange of an empty or inverted range is a no-op and not counted: an
// inverted range tombstone would violate Pebble's invariants.
func (b *batch) DeleteRange(start, end []byte) error {
	if err := b.writable(); err != nil {
		return err
	}
	if bytes.Compare(start, end) >= 0 {
		return nil
	}
	if err := b.b.DeleteRange(start, end, nil); err != nil {
		return fmt.Errorf("pebble: batch delete range: %w", err)
	}
	return nil
}

func (b *batch) Count() int {
	if b.b == nil || b.closed {
		return 0
	}
	return int(b.b.Count())
}

func (b *batch) Commit(sync bool) error {
	if err := b.writable(); err != nil {
		return err
	}
	e := b.e
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return storage.ErrClosed
	}
	b.committed = true
	if b.b.Count() == 0 {
		// Pebble skips empty batches; a synced empty commit must still make
		// the batches before it durable.
		if sync {
			if err := e.db.LogData(nil, pebble.Sync); err != nil {
				return fmt.Errorf("pebble: commit: %w", err)
			}
		}
		return nil
	}
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	if err := e.db.Apply(b.b, opt); err != nil {
		return fmt.Errorf("pebble: commit: %w", err)
	}
	if sync {
		e.mark.committed(b.b)
	}
	return nil
}

// Close drops the batch. Closing twice returns nil.
func (b *batch) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if b.b == nil {
		return nil
	}
	err := b.b.Close()
	b.b = nil
	return err
}
