package memory

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"

	"github.com/google/btree"

	"github.com/metastore/metastore/internal/storage"
)

// degree of the B-tree: wide nodes make clones and cursor steps cheap.
const degree = 32

type item struct {
	key, value []byte
}

func less(a, b item) bool { return bytes.Compare(a.key, b.key) < 0 }

type tree = btree.BTreeG[item]

// Engine is an in-memory storage.Engine. It is safe for concurrent use.
type Engine struct {
	mu sync.RWMutex
	// live is the tree writers mutate, under mu held exclusively.
	live *tree
	// frozen is a read-only clone of live taken since the last write, or
	// nil. Readers share it; writers drop it.
	frozen *tree
	// size is the sum of key and value lengths in live.
	size   int64
	closed atomic.Bool
}

var _ storage.Engine = (*Engine)(nil)

// New returns an empty engine.
func New() *Engine {
	return &Engine{live: btree.NewG(degree, less)}
}

// Get implements storage.Reader.
func (e *Engine) Get(key []byte) ([]byte, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return nil, storage.ErrClosed
	}
	return get(e.live, key)
}

func get(t *tree, key []byte) ([]byte, error) {
	it, ok := t.Get(item{key: key})
	if !ok {
		return nil, storage.ErrNotFound
	}
	return bytes.Clone(it.value), nil
}

// view returns a frozen clone of the live tree, reusing the current one if
// no write happened since it was taken.
func (e *Engine) view() (*tree, error) {
	e.mu.RLock()
	t := e.frozen
	e.mu.RUnlock()
	if e.closed.Load() {
		return nil, storage.ErrClosed
	}
	if t != nil {
		return t, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return nil, storage.ErrClosed
	}
	if e.frozen == nil {
		// Clone marks both trees copy-on-write, so it needs exclusive
		// access to live.
		e.frozen = e.live.Clone()
	}
	return e.frozen, nil
}

// NewIter implements storage.Reader.
func (e *Engine) NewIter(opts storage.IterOptions) (storage.Iterator, error) {
	t, err := e.view()
	if err != nil {
		return nil, err
	}
	return newIterator(t, opts, &e.closed), nil
}

// NewBatch implements storage.Engine.
func (e *Engine) NewBatch() storage.Batch {
	return &batch{e: e}
}

// NewSnapshot implements storage.Engine. On a closed engine it returns a
// snapshot whose every operation fails with storage.ErrClosed.
func (e *Engine) NewSnapshot() storage.Snapshot {
	t, err := e.view()
	s := &snapshot{t: t, engineClosed: &e.closed}
	if err != nil {
		s.closed.Store(true)
	}
	return s
}

// Checkpoint implements storage.Engine: it writes the current contents to a
// file in dir that Load reads back.
func (e *Engine) Checkpoint(dir string) error {
	t, err := e.view()
	if err != nil {
		return err
	}
	return writeCheckpoint(dir, t)
}

// Sync implements storage.Engine; there is nothing to make durable.
func (e *Engine) Sync() error {
	if e.closed.Load() {
		return storage.ErrClosed
	}
	return nil
}

// CompactAll implements storage.Engine. It has nothing to do: a deleted
// key leaves the tree at once and its memory goes back to the Go heap, so
// no space is held by dead versions.
func (e *Engine) CompactAll(context.Context) error {
	if e.closed.Load() {
		return storage.ErrClosed
	}
	return nil
}

// Usage implements storage.Engine: both figures are the total length of
// the keys and values held.
func (e *Engine) Usage() storage.Usage {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return storage.Usage{SizeBytes: e.size, LiveBytes: e.size}
}

// Close implements storage.Engine. Iterators and snapshots fail with
// storage.ErrClosed afterwards. A second Close returns storage.ErrClosed.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Swap(true) {
		return storage.ErrClosed
	}
	// Drop the data so that a closed engine does not pin memory; readers
	// keep their clones until they let go.
	e.live = btree.NewG(degree, less)
	e.frozen = nil
	e.size = 0
	return nil
}

// apply applies a batch's operations in order, all under one lock hold, so
// no reader sees part of the batch.
func (e *Engine) apply(ops []op) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return storage.ErrClosed
	}
	if len(ops) == 0 {
		return nil
	}
	e.frozen = nil
	for _, o := range ops {
		switch o.kind {
		case opSet:
			if old, ok := e.live.ReplaceOrInsert(item{key: o.key, value: o.value}); ok {
				e.size -= int64(len(old.key) + len(old.value))
			}
			e.size += int64(len(o.key) + len(o.value))
		case opDelete:
			if old, ok := e.live.Delete(item{key: o.key}); ok {
				e.size -= int64(len(old.key) + len(old.value))
			}
		case opDeleteRange:
			e.deleteRange(o.key, o.value)
		}
	}
	return nil
}

func (e *Engine) deleteRange(start, end []byte) {
	if bytes.Compare(start, end) >= 0 {
		return
	}
	// Collect first: the tree must not change under AscendRange.
	var doomed []item
	e.live.AscendRange(item{key: start}, item{key: end}, func(it item) bool {
		doomed = append(doomed, it)
		return true
	})
	for _, it := range doomed {
		e.live.Delete(it)
		e.size -= int64(len(it.key) + len(it.value))
	}
}
