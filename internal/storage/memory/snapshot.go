package memory

import (
	"sync/atomic"

	"github.com/metastore/metastore/internal/storage"
)

// snapshot reads a frozen clone; it needs no lock because nobody writes a
// frozen tree.
type snapshot struct {
	t            *tree
	engineClosed *atomic.Bool
	closed       atomic.Bool
}

var _ storage.Snapshot = (*snapshot)(nil)

func (s *snapshot) usable() bool {
	return !s.closed.Load() && !s.engineClosed.Load()
}

func (s *snapshot) Get(key []byte) ([]byte, error) {
	if !s.usable() {
		return nil, storage.ErrClosed
	}
	return get(s.t, key)
}

// NewIter returns an iterator over the snapshot. Like the Pebble engine's,
// it stays usable after the snapshot is closed, until the engine closes.
func (s *snapshot) NewIter(opts storage.IterOptions) (storage.Iterator, error) {
	if !s.usable() {
		return nil, storage.ErrClosed
	}
	return newIterator(s.t, opts, s.engineClosed), nil
}

// Close releases the snapshot; closing twice returns nil.
func (s *snapshot) Close() error {
	s.closed.Store(true)
	return nil
}
