package pebble

import (
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/metastore/metastore/internal/storage"
)

// iterator guards a pebble.Iterator so that it can be closed by the engine's
// Close while its owner still holds it: afterwards every call fails cleanly
// instead of touching a released Pebble iterator. The mutex is per iterator
// and uncontended in normal use.
type iterator struct {
	e      *Engine
	mu     sync.Mutex
	it     *pebble.Iterator
	closed bool
	err    error
	// empty marks an iterator whose bounds hold no key; it never reaches
	// Pebble's positioning calls.
	empty bool
}

var (
	_ storage.Iterator     = (*iterator)(nil)
	_ storage.PrefixSeeker = (*iterator)(nil)
)

func (i *iterator) move(f func(*pebble.Iterator) bool) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		if i.err == nil {
			i.err = storage.ErrClosed
		}
		return false
	}
	if i.empty {
		return false
	}
	return f(i.it)
}

func (i *iterator) First() bool { return i.move((*pebble.Iterator).First) }
func (i *iterator) Last() bool  { return i.move((*pebble.Iterator).Last) }
func (i *iterator) Next() bool  { return i.move((*pebble.Iterator).Next) }
func (i *iterator) Prev() bool  { return i.move((*pebble.Iterator).Prev) }

// The empty key is the smallest key, so seeks to it are answered with First
// (and First then Prev, which leaves the iterator exhausted backward, as
// SeekLT would). Besides being cheaper, this avoids a Pebble bug: in race
// and invariants builds its seeks index key[0] of an empty key and panic.

func (i *iterator) SeekGE(key []byte) bool {
	if len(key) == 0 {
		return i.First()
	}
	return i.move(func(it *pebble.Iterator) bool { return it.SeekGE(key) })
}

// SeekPrefixGE implements storage.PrefixSeeker: with prefix filters it
// skips tables whose filter rules out key's MVCC prefix; without, it is
// SeekGE.
func (i *iterator) SeekPrefixGE(key []byte) bool {
	if !i.e.prefixFilters || len(key) == 0 {
		return i.SeekGE(key)
	}
	return i.move(func(it *pebble.Iterator) bool { return it.SeekPrefixGE(key) })
}

func (i *iterator) SeekLT(key []byte) bool {
	if len(key) == 0 {
		return i.move(func(it *pebble.Iterator) bool {
			return it.First() && it.Prev()
		})
	}
	return i.move(func(it *pebble.Iterator) bool { return it.SeekLT(key) })
}

func (i *iterator) Valid() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return !i.closed && !i.empty && i.it.Valid()
}

func (i *iterator) Key() []byte {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed || i.empty || !i.it.Valid() {
		return nil
	}
	return i.it.Key()
}

func (i *iterator) Value() []byte {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed || i.empty || !i.it.Valid() {
		return nil
	}
	v, err := i.it.ValueAndErr()
	if err != nil {
		// Pebble records the error in the iterator too; Error reports it.
		return nil
	}
	return v
}

func (i *iterator) Error() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.err != nil {
		return i.err
	}
	if i.closed {
		return nil
	}
	return i.it.Error()
}

// Close releases the iterator. Closing twice, or after the engine closed
// it, returns nil.
func (i *iterator) Close() error {
	i.mu.Lock()
	if i.closed {
		i.mu.Unlock()
		return nil
	}
	i.closed = true
	err := i.it.Close()
	i.it = nil
	i.mu.Unlock()
	i.e.untrackIter(i)
	return err
}

// release is Close on behalf of the engine, which has already dropped the
// iterator from its tracking set.
func (i *iterator) release() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil
	}
	i.closed = true
	i.err = storage.ErrClosed
	err := i.it.Close()
	i.it = nil
	return err
}

// ValueLen returns the length of the current value without reading it when
// Pebble keeps it in a blob file (valuesep.go), or -1 when the iterator is
// not on a key. mvcc's count-only walk uses it to tell a live record from
// a tombstone by its length alone.
func (i *iterator) ValueLen() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed || i.empty || !i.it.Valid() {
		return -1
	}
	lv := i.it.LazyValue()
	return lv.Len()
}
