package pebble

import (
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/metastore/metastore/internal/storage"
)

type snapshot struct {
	e      *Engine
	mu     sync.RWMutex // shared by reads, exclusive by Close
	s      *pebble.Snapshot
	closed bool
}

var _ storage.Snapshot = (*snapshot)(nil)

func (s *snapshot) Get(key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	return get(s.s, key)
}

// NewIter returns an iterator over the snapshot. It stays usable after the
// snapshot is closed (Pebble iterators pin their own view), until the
// engine closes.
func (s *snapshot) NewIter(opts storage.IterOptions) (storage.Iterator, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	return s.e.newIter(s.s, opts)
}

// Close releases the snapshot. Closing twice, or after the engine closed
// it, returns nil.
func (s *snapshot) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.s.Close()
	s.s = nil
	s.mu.Unlock()
	s.e.untrackSnap(s)
	return err
}

func (s *snapshot) release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.s.Close()
	s.s = nil
	return err
}
