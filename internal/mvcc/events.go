package mvcc

import (
	"bytes"
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/storage"
)

// Events returns, in revision order, the events with a main revision in
// [fromRev, toRev] (toRev <= 0: the current revision) on keys in the range
// (see Store.Range for the meaning of end), each with PrevKv when the
// previous version still exists. With limit > 0 it stops at the first
// revision boundary after limit events (a revision's events are never split).
// next is the first revision not returned. ErrCompacted if fromRev is below
// the compaction revision.
func (s *Store) Events(ctx context.Context, fromRev, toRev int64, key, end []byte, limit int) (evs []*mvccpb.Event, next int64, err error) {
	cur := s.Rev()
	if toRev <= 0 || toRev > cur {
		toRev = cur
	}
	if fromRev < 1 {
		fromRev = 1
	}
	if fromRev > toRev {
		if fromRev < s.CompactRev() {
			return nil, fromRev, ErrCompacted
		}
		return nil, fromRev, nil
	}
	hit, err := s.eng.NewIter(storage.IterOptions{LowerBound: historyKey(fromRev, 0), UpperBound: historyKey(toRev+1, 0)})
	if err != nil {
		return nil, 0, fmt.Errorf("mvcc: events iterator: %w", err)
	}
	defer func() { _ = hit.Close() }()
	kit, err := s.eng.NewIter(storage.IterOptions{LowerBound: prefixK, UpperBound: storage.PrefixEnd(prefixK)})
	if err != nil {
		return nil, 0, fmt.Errorf("mvcc: events iterator: %w", err)
	}
	defer func() { _ = kit.Close() }()
	if fromRev < s.CompactRev() { // after opening the iterators: see the package comment
		return nil, 0, ErrCompacted
	}
	next = toRev + 1
	lastMain := int64(0)
	n := 0
	for ok := hit.First(); ok; ok = hit.Next() {
		main, sub, err := splitHistoryKey(hit.Key())
		if err != nil {
			return nil, 0, err
		}
		if limit > 0 && len(evs) >= limit && main != lastMain {
			next = main
			break
		}
		if n++; n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, 0, fmt.Errorf("mvcc: events: %w", err)
			}
		}
		u, tomb, err := decodeHistory(hit.Value())
		if err != nil {
			return nil, 0, err
		}
		if !inRange(u, key, end) {
			continue
		}
		u = append([]byte(nil), u...)
		lastMain = main
		ev, err := eventAt(kit, u, main, sub, tomb)
		if err != nil {
			return nil, 0, err
		}
		evs = append(evs, ev)
	}
	if err := hit.Error(); err != nil {
		return nil, 0, fmt.Errorf("mvcc: events scan: %w", err)
	}
	return evs, next, nil
}

// eventAt builds the event of version (main, sub) of u, with the version
// before it as PrevKv when that is live and still stored.
func eventAt(kit storage.Iterator, u []byte, main, sub int64, tomb bool) (*mvccpb.Event, error) {
	g := keyGroup(u)
	vk := versionKey(g, main, sub)
	if !kit.SeekGE(vk) || !bytes.Equal(kit.Key(), vk) {
		if err := kit.Error(); err != nil {
			return nil, fmt.Errorf("mvcc: events lookup: %w", err)
		}
		return nil, fmt.Errorf("mvcc: history names revision %d.%d of %q but the version is missing", main, sub, u)
	}
	var ev *mvccpb.Event
	if tomb {
		ev = &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: u, ModRevision: main}}
	} else {
		v, err := decodeRecord(kit.Value(), main, sub, true)
		if err != nil {
			return nil, err
		}
		ev = &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: toKV(u, &v)}
	}
	if kit.Next() {
		k := kit.Key()
		if len(k) == len(g)+revSuffixLen && bytes.HasPrefix(k, g) {
			_, pm, ps, _ := splitVersionKey(k)
			pv, err := decodeRecord(kit.Value(), pm, ps, true)
			if err != nil {
				return nil, err
			}
			if !pv.tomb {
				ev.PrevKv = toKV(append([]byte(nil), u...), &pv)
			}
		}
	}
	return ev, kit.Error()
}
