package memory

import (
	"bytes"
	"slices"
	"sync/atomic"

	"github.com/metastore/metastore/internal/storage"
)

// Fill sizes of the cursor's read-ahead buffer. A seek fetches a few items
// (point lookups read one); each further refill in a scan doubles, so a long
// scan costs one O(log n) tree descent per maxFill items.
const (
	minFill = 4
	maxFill = 128
)

// iterator is a cursor over a frozen tree. It buffers a run of contiguous
// items in ascending order around the current position; moving within the
// run is O(1), moving past either end refills it with one bounded tree walk
// starting from the run's edge key.
type iterator struct {
	t            *tree
	lower, upper []byte
	engineClosed *atomic.Bool

	buf  []item // contiguous items of the tree, ascending
	pos  int    // index of the current item in buf when valid
	fill int    // size of the next refill
	// atStart/atEnd record that buf[0] / buf[len-1] is the first / last
	// item within bounds, so stepping past it needs no tree walk.
	atStart, atEnd bool

	valid bool
	// exhausted is +1 after stepping past the last item, -1 after stepping
	// before the first, 0 otherwise; it lets Prev after the end (and Next
	// before the start) come back, as Pebble's iterators do.
	exhausted int
	closed    bool
	err       error
}

var _ storage.Iterator = (*iterator)(nil)

func newIterator(t *tree, opts storage.IterOptions, engineClosed *atomic.Bool) *iterator {
	return &iterator{
		t:            t,
		lower:        bytes.Clone(opts.LowerBound),
		upper:        bytes.Clone(opts.UpperBound),
		engineClosed: engineClosed,
	}
}

// usable reports whether the iterator may move; it records why not.
func (i *iterator) usable() bool {
	if i.closed || i.engineClosed.Load() {
		if i.err == nil {
			i.err = storage.ErrClosed
		}
		i.valid = false
		return false
	}
	return true
}

func (i *iterator) inUpper(k []byte) bool {
	return i.upper == nil || bytes.Compare(k, i.upper) < 0
}

func (i *iterator) inLower(k []byte) bool {
	return i.lower == nil || bytes.Compare(k, i.lower) >= 0
}

// fillForward loads up to i.fill items with keys >= from (> from unless
// inclusive), within bounds. from nil means the lower bound.
func (i *iterator) fillForward(from []byte, inclusive bool) bool {
	i.buf = i.buf[:0]
	n := i.fill
	visit := func(it item) bool {
		if !inclusive && bytes.Equal(it.key, from) {
			return true
		}
		if !i.inUpper(it.key) {
			return false
		}
		i.buf = append(i.buf, it)
		return len(i.buf) < n
	}
	if from == nil {
		i.t.Ascend(visit)
	} else {
		i.t.AscendGreaterOrEqual(item{key: from}, visit)
	}
	i.atEnd = len(i.buf) < n
	i.atStart = false
	return len(i.buf) > 0
}

// fillBackward loads up to i.fill items with keys < before (all keys if
// before is nil), within bounds, in ascending order.
func (i *iterator) fillBackward(before []byte) bool {
	i.buf = i.buf[:0]
	n := i.fill
	visit := func(it item) bool {
		if before != nil && bytes.Equal(it.key, before) {
			return true
		}
		if !i.inLower(it.key) {
			return false
		}
		i.buf = append(i.buf, it)
		return len(i.buf) < n
	}
	if before == nil {
		i.t.Descend(visit)
	} else {
		i.t.DescendLessOrEqual(item{key: before}, visit)
	}
	slices.Reverse(i.buf)
	i.atStart = len(i.buf) < n
	i.atEnd = false
	return len(i.buf) > 0
}

func (i *iterator) grow() {
	i.fill = min(i.fill*2, maxFill)
}

func (i *iterator) settle(ok bool, pos int, exhausted int) bool {
	i.valid = ok
	i.pos = pos
	if ok {
		i.exhausted = 0
	} else {
		i.exhausted = exhausted
	}
	return ok
}

func (i *iterator) First() bool {
	if !i.usable() {
		return false
	}
	i.fill = minFill
	ok := i.fillForward(i.lower, true)
	if ok {
		i.atStart = true
	}
	return i.settle(ok, 0, 1)
}

func (i *iterator) Last() bool {
	if !i.usable() {
		return false
	}
	i.fill = minFill
	ok := i.fillBackward(i.upper)
	if ok {
		i.atEnd = true
	}
	return i.settle(ok, len(i.buf)-1, -1)
}

func (i *iterator) SeekGE(key []byte) bool {
	if !i.usable() {
		return false
	}
	if i.lower != nil && bytes.Compare(key, i.lower) < 0 {
		key = i.lower
	}
	i.fill = minFill
	return i.settle(i.fillForward(key, true), 0, 1)
}

func (i *iterator) SeekLT(key []byte) bool {
	if !i.usable() {
		return false
	}
	if i.upper != nil && bytes.Compare(key, i.upper) > 0 {
		key = i.upper
	}
	i.fill = minFill
	ok := i.fillBackward(key)
	return i.settle(ok, len(i.buf)-1, -1)
}

func (i *iterator) Next() bool {
	if !i.usable() {
		return false
	}
	if !i.valid {
		if i.exhausted < 0 {
			return i.First()
		}
		return false
	}
	if i.pos+1 < len(i.buf) {
		i.pos++
		return true
	}
	if i.atEnd {
		return i.settle(false, 0, 1)
	}
	from := i.buf[i.pos].key
	i.grow()
	return i.settle(i.fillForward(from, false), 0, 1)
}

func (i *iterator) Prev() bool {
	if !i.usable() {
		return false
	}
	if !i.valid {
		if i.exhausted > 0 {
			return i.Last()
		}
		return false
	}
	if i.pos > 0 {
		i.pos--
		return true
	}
	if i.atStart {
		return i.settle(false, 0, -1)
	}
	before := i.buf[0].key
	i.grow()
	ok := i.fillBackward(before)
	return i.settle(ok, len(i.buf)-1, -1)
}

func (i *iterator) Valid() bool {
	return i.valid && !i.closed && !i.engineClosed.Load()
}

func (i *iterator) Key() []byte {
	if !i.Valid() {
		return nil
	}
	return i.buf[i.pos].key
}

func (i *iterator) Value() []byte {
	if !i.Valid() {
		return nil
	}
	return i.buf[i.pos].value
}

func (i *iterator) Error() error { return i.err }

// Close releases the iterator; closing twice returns nil.
func (i *iterator) Close() error {
	i.closed = true
	i.valid = false
	i.buf = nil
	i.t = nil
	return nil
}
