package mvcc

import (
	"bytes"
	"fmt"

	"github.com/metastore/metastore/internal/storage"
)

// nextStepsBeforeSeek bounds how many older versions of a key a scan steps
// over with Next before it seeks past the key instead: keys usually have few
// versions, and a Next is much cheaper than a seek.
const nextStepsBeforeSeek = 4

// engineScan walks the engine's k/ space and yields, per user key in the
// range, the newest version whose main revision is <= atRev (tombstones
// included, so that an overlay can be merged on top).
type engineScan struct {
	it     storage.Iterator
	hi     []byte
	atRev  int64
	single bool
	values bool
	err    error
	done   bool
	// current item
	ukey []byte
	v    version
}

func newEngineScan(r storage.Reader, key, end []byte, atRev int64, values bool) (*engineScan, error) {
	lo, hi, single, ok := rangeBounds(key, end)
	s := &engineScan{atRev: atRev, single: single, values: values, hi: hi}
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
	if !seek(lo) {
		s.done = true
	}
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

// next advances to the next user key that has a version <= atRev.
func (s *engineScan) next() bool {
	for !s.done {
		if !s.it.Valid() {
			s.done = true
			s.err = s.it.Error()
			return false
		}
		group, main, _, err := splitVersionKey(s.it.Key())
		if err != nil {
			s.fail(err)
			return false
		}
		group = append([]byte(nil), group...)
		if main > s.atRev {
			// Newer versions than the read revision: seek to the first
			// version <= atRev of this key.
			if !s.it.SeekGE(seekAtRev(group, s.atRev)) {
				s.done = true
				s.err = s.it.Error()
				return false
			}
			k := s.it.Key()
			if len(k) != len(group)+revSuffixLen || !bytes.HasPrefix(k, group) {
				continue // no version <= atRev: the key did not exist then
			}
			_, main, _, _ = splitVersionKey(k)
		}
		k := s.it.Key()
		_, _, sub, _ := splitVersionKey(k)
		v, err := decodeRecord(s.it.Value(), main, sub, s.values)
		if err != nil {
			s.fail(err)
			return false
		}
		u, err := groupUserKey(group)
		if err != nil {
			s.fail(err)
			return false
		}
		s.ukey, s.v = u, v
		s.skipGroup(group)
		return true
	}
	return false
}

// skipGroup positions the iterator on the first version of the next key.
func (s *engineScan) skipGroup(group []byte) {
	if s.single {
		s.done = true
		return
	}
	for i := 0; i < nextStepsBeforeSeek; i++ {
		if !s.it.Next() {
			return // next() notices !Valid
		}
		if !bytes.HasPrefix(s.it.Key(), group) {
			return
		}
	}
	s.it.SeekGE(groupEnd(group))
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

// scanRange calls fn, in key order, for every user key in the range whose
// newest version <= atRev is live, merging the overlay (writes staged by the
// current Writer, newer than anything on the engine). fn returns false to stop.
// afterOpen (if not nil) runs once the engine iterator is open, before the
// first step: the place to check the compaction revision.
func scanRange(r storage.Reader, ov *overlay, key, end []byte, atRev int64, values bool, afterOpen func() error, fn func(rangeItem) bool) error {
	es, err := newEngineScan(r, key, end, atRev, values)
	if err != nil {
		return err
	}
	defer es.close()
	if afterOpen != nil {
		if err := afterOpen(); err != nil {
			return err
		}
	}
	var ovItems []rangeItem
	if ov != nil {
		ovItems = ov.visible(key, end, atRev)
	}
	haveE := es.next()
	oi := 0
	for haveE || oi < len(ovItems) {
		var it rangeItem
		switch {
		case !haveE:
			it = ovItems[oi]
			oi++
		case oi >= len(ovItems):
			it = rangeItem{key: es.ukey, v: es.v}
			haveE = es.next()
		default:
			c := bytes.Compare(es.ukey, ovItems[oi].key)
			switch {
			case c < 0:
				it = rangeItem{key: es.ukey, v: es.v}
				haveE = es.next()
			case c > 0:
				it = ovItems[oi]
				oi++
			default: // the overlay holds the newer version
				it = ovItems[oi]
				oi++
				haveE = es.next()
			}
		}
		if it.v.tomb {
			continue
		}
		if !values {
			it.v.value = nil
		}
		if !fn(it) {
			return es.err
		}
	}
	return es.err
}
