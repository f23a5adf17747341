package mvcc

import (
	"bytes"
	"context"
	"fmt"

	"github.com/metastore/metastore/internal/storage"
)

// nextStepsBeforeSeek bounds how many versions of a key a scan steps over
// with Next before it seeks instead: keys usually have few versions, and a
// Next is much cheaper than a seek.
const nextStepsBeforeSeek = 4

// ctxCheckEvery is how many keys a scan visits between two checks of its
// context: often enough to stop a cancelled range over millions of keys
// quickly, rarely enough to cost nothing.
const ctxCheckEvery = 1024

// engineScan walks the engine's k/ space and yields, per user key in the
// range, the newest version whose main revision is <= atRev (tombstones
// included, so that an overlay can be merged on top).
//
// It has two modes. With full set it decodes each version (user key,
// record, value if values is set) into ukey and v. Without, it only learns
// the key's group (escaped key, in a buffer reused from key to key) and
// whether the version is a tombstone: that is all counting needs, and it
// allocates nothing per key.
type engineScan struct {
	it     storage.Iterator
	hi     []byte
	atRev  int64
	single bool
	values bool
	full   bool
	err    error
	done   bool
	// current item
	group []byte // the current key's group; reused
	tomb  bool
	ukey  []byte // full mode only
	v     version
	// buf holds seek keys built while scanning; reused.
	buf []byte
	// key is the iterator's key, nil once it is exhausted; kept so that
	// each position costs one Key call (engine iterators may lock per call).
	key []byte
}

func newEngineScan(r storage.Reader, key, end []byte, atRev int64, values bool) (*engineScan, error) {
	lo, hi, single, ok := rangeBounds(key, end)
	s := &engineScan{atRev: atRev, single: single, values: values, full: true, hi: hi}
	if !ok {
		s.done = true
		return s, nil
	}
	it, err := r.NewIter(storage.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("mvcc: open iterator: %w", err)
	}
	s.it = it
	seek := it.SeekGE
	if single {
		seek = func(k []byte) bool { return seekPrefix(it, k) }
	}
	s.moved(seek(lo))
	return s, nil
}

// seekPrefix positions it at the first version of group g, or reports
// false when g has none; it may also land past g (the caller checks). An
// engine with prefix filters answers it without reading data when g has no
// version at all, the common case of a put that creates a key.
func seekPrefix(it storage.Iterator, g []byte) bool {
	if ps, ok := it.(storage.PrefixSeeker); ok {
		return ps.SeekPrefixGE(g)
	}
	return it.SeekGE(g)
}

func (s *engineScan) close() {
	if s.it != nil {
		_ = s.it.Close()
	}
}

// moved records the iterator's position after a positioning call that
// reported ok.
func (s *engineScan) moved(ok bool) bool {
	s.key = nil
	if ok {
		s.key = s.it.Key()
	}
	return s.key != nil
}

// inGroup reports whether engine key k is a version of the current group.
func (s *engineScan) inGroup(k []byte) bool {
	return len(k) == len(s.group)+revSuffixLen && bytes.HasPrefix(k, s.group)
}

// next advances to the next user key that has a version <= atRev.
func (s *engineScan) next() bool {
	for !s.done {
		if s.key == nil {
			return s.stop()
		}
		group, main, _, err := splitVersionKey(s.key)
		if err != nil {
			s.fail(err)
			return false
		}
		s.group = append(s.group[:0], group...)
		if main > s.atRev && !s.stepToAtRev() {
			continue // no version <= atRev: the key did not exist then
		}
		if s.done {
			return false
		}
		k := s.key
		_, main, sub, err := splitVersionKey(k)
		if err != nil {
			s.fail(err)
			return false
		}
		if !s.full && s.liveByLen() {
			// Counting: the record is live, and its value (perhaps in a
			// blob file) need not be read.
			s.tomb = false
			s.skipGroup()
			return true
		}
		b := s.it.Value()
		if len(b) < 1 {
			s.fail(fmt.Errorf("mvcc: empty version record at %q", k))
			return false
		}
		s.tomb = b[0]&flagTombstone != 0
		if s.full {
			v, err := decodeRecord(b, main, sub, s.values)
			if err != nil {
				s.fail(err)
				return false
			}
			u, err := groupUserKey(s.group)
			if err != nil {
				s.fail(err)
				return false
			}
			s.ukey, s.v = u, v
		}
		s.skipGroup()
		return true
	}
	return false
}

// valueLener is implemented by engine iterators that tell the length of
// the current value without reading it (the Pebble engine's, for values it
// keeps in blob files away from the keys).
type valueLener interface {
	ValueLen() int
}

// tombRecordLen is the length of a tombstone's record: the flag byte alone
// (appendRecord). A live record also holds its create revision, version
// and lease, so it is longer (TestRecordLengthTellsLiveness).
const tombRecordLen = 1

// liveByLen reports whether the current record is known to be live from
// its length alone, so that a count reads keys, not values.
func (s *engineScan) liveByLen() bool {
	vl, ok := s.it.(valueLener)
	return ok && vl.ValueLen() > tombRecordLen
}

// stepToAtRev moves from a version of the current group newer than atRev to
// the group's newest version <= atRev. It reports false when the group has
// none, leaving the iterator on the next group (or exhausted, with done
// set when it is); it reports true with done set when the iterator failed.
func (s *engineScan) stepToAtRev() bool {
	for i := 0; i < nextStepsBeforeSeek; i++ {
		if !s.moved(s.it.Next()) {
			s.stop()
			return false
		}
		k := s.key
		if !s.inGroup(k) {
			return false
		}
		_, main, _, err := splitVersionKey(k)
		if err != nil {
			s.fail(err)
			return true
		}
		if main <= s.atRev {
			return true
		}
	}
	s.buf = appendSeekAtRev(s.buf[:0], s.group, s.atRev)
	if !s.moved(s.it.SeekGE(s.buf)) {
		s.stop()
		return false
	}
	return s.inGroup(s.key)
}

// skipGroup positions the iterator on the first version of the next key.
func (s *engineScan) skipGroup() {
	if s.single {
		s.done = true
		return
	}
	for i := 0; i < nextStepsBeforeSeek; i++ {
		if !s.moved(s.it.Next()) {
			return // next() notices the end
		}
		if !s.inGroup(s.key) {
			return
		}
	}
	s.buf = appendGroupEnd(s.buf[:0], s.group)
	s.moved(s.it.SeekGE(s.buf))
}

// stop ends the scan at the end of the iterator, keeping its error.
func (s *engineScan) stop() bool {
	s.done = true
	s.err = s.it.Error()
	return false
}

func (s *engineScan) fail(err error) {
	s.err = err
	s.done = true
}

// rangeItem is one visible key version produced by a scan.
type rangeItem struct {
	key []byte
	v   version
}

// scanRange calls fn, in key order, for the first max user keys in the range
// (every key when max < 0) whose newest version <= atRev is live, merging the
// overlay (writes staged by the current Writer, newer than anything on the
// engine); fn returns false to stop. It then counts the remaining live keys
// without decoding them and returns that count (0 when fn stopped the scan).
// afterOpen (if not nil) runs once the engine iterator is open, before the
// first step: the place to check the compaction revision. ctx is checked
// every ctxCheckEvery keys.
func scanRange(ctx context.Context, r storage.Reader, ov *overlay, key, end []byte, atRev int64, values bool, max int, afterOpen func() error, fn func(rangeItem) bool) (int, error) {
	es, err := newEngineScan(r, key, end, atRev, values)
	if err != nil {
		return 0, err
	}
	defer es.close()
	if afterOpen != nil {
		if err := afterOpen(); err != nil {
			return 0, err
		}
	}
	var ovItems []rangeItem
	var ovGroups [][]byte // the engine groups of ovItems, to merge by
	if ov != nil {
		ovItems = ov.visible(key, end, atRev)
		ovGroups = make([][]byte, len(ovItems))
		for i := range ovItems {
			ovGroups[i] = keyGroup(ovItems[i].key)
		}
	}
	given, rest, steps := 0, 0, 0
	es.full = max != 0
	haveE := es.next()
	oi := 0
	for haveE || oi < len(ovItems) {
		if steps++; steps%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		// Pick the smaller key of the engine's and the overlay's next; on a
		// tie the overlay holds the newer version.
		fromOv := false
		switch {
		case !haveE:
			fromOv = true
		case oi < len(ovItems):
			c := bytes.Compare(es.group, ovGroups[oi])
			fromOv = c >= 0
		}
		var it rangeItem
		var tomb bool
		if fromOv {
			it = ovItems[oi]
			tomb = it.v.tomb
			if haveE && bytes.Equal(es.group, ovGroups[oi]) {
				haveE = es.next()
			}
			oi++
		} else {
			tomb = es.tomb
			if es.full {
				it = rangeItem{key: es.ukey, v: es.v}
			}
			// Once max keys are given, the next ones are only counted:
			// they need not be decoded.
			if !tomb {
				es.full = max < 0 || given+1 < max
			}
			haveE = es.next()
		}
		if tomb {
			continue
		}
		if max >= 0 && given >= max {
			rest++
			continue
		}
		given++
		if !values {
			it.v.value = nil
		}
		if !fn(it) {
			return 0, es.err
		}
	}
	return rest, es.err
}
