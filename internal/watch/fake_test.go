package watch

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

var errFakeCompacted = errors.New("fake: compacted")

// fakeStore is an in-memory revisioned store with revision-ordered history
// that notifies a hub like the real store's commit hook.
type fakeStore struct {
	mu      sync.Mutex
	rev     int64
	compact int64
	kvs     map[string]*mvccpb.KeyValue
	hist    []*mvccpb.Event
	notify  func(rev int64, evs []*mvccpb.Event)

	reads atomic.Int64
	// gate, when set, is received from before every history read.
	gate chan struct{}
}

func newFakeStore() *fakeStore {
	return &fakeStore{rev: 1, compact: -1, kvs: make(map[string]*mvccpb.KeyValue)}
}

type op struct {
	del        bool
	key, value string
}

func put(k, v string) op { return op{key: k, value: v} }
func del(k string) op    { return op{key: k, del: true} }

// txn applies ops at one new revision and notifies.
func (f *fakeStore) txn(ops ...op) int64 {
	f.mu.Lock()
	rev := f.rev + 1
	var evs []*mvccpb.Event
	for _, o := range ops {
		prev := f.kvs[o.key]
		if o.del {
			if prev == nil {
				continue
			}
			delete(f.kvs, o.key)
			evs = append(evs, &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte(o.key), ModRevision: rev}, PrevKv: prev})
			continue
		}
		kv := &mvccpb.KeyValue{Key: []byte(o.key), Value: []byte(o.value), ModRevision: rev, CreateRevision: rev, Version: 1}
		if prev != nil {
			kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
		}
		f.kvs[o.key] = kv
		evs = append(evs, &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv, PrevKv: prev})
	}
	if len(evs) == 0 {
		f.mu.Unlock()
		return f.rev
	}
	f.rev = rev
	for i := range evs {
		f.hist = append(f.hist, &mvccpb.Event{Type: evs[i].Type, Kv: evs[i].Kv, PrevKv: evs[i].PrevKv})
	}
	n := f.notify
	f.mu.Unlock()
	if n != nil {
		n(rev, evs)
	}
	return rev
}

func (f *fakeStore) put(k, v string) int64 { return f.txn(put(k, v)) }

func (f *fakeStore) compactTo(rev int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.compact = rev
	i := 0
	for i < len(f.hist) && f.hist[i].Kv.ModRevision < rev {
		i++
	}
	f.hist = append([]*mvccpb.Event(nil), f.hist[i:]...)
}

func (f *fakeStore) Rev() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rev
}

func (f *fakeStore) CompactRev() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.compact
}

// PrevKV finds key's newest version at rev in the history kept since the
// compaction (the fake's events always carry PrevKv, so the hub only calls
// it for events a test stripped).
func (f *fakeStore) PrevKV(_ context.Context, key []byte, rev int64) (*mvccpb.KeyValue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if rev < f.compact {
		return nil, nil
	}
	for i := len(f.hist) - 1; i >= 0; i-- {
		e := f.hist[i]
		if e.Kv.ModRevision > rev || string(e.Kv.Key) != string(key) {
			continue
		}
		if e.Type == mvccpb.Event_DELETE {
			return nil, nil
		}
		return e.Kv, nil
	}
	return nil, nil
}

// Events returns whole revisions only; if the first revision alone exceeds
// limit it returns nothing with next == fromRev (the hub must cope).
func (f *fakeStore) Events(ctx context.Context, fromRev, toRev int64, key, end []byte, limit int) ([]*mvccpb.Event, int64, error) {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	f.reads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if fromRev < f.compact {
		return nil, 0, errFakeCompacted
	}
	fromKey := len(end) == 1 && end[0] == 0
	if len(end) == 0 {
		end = nil
	}
	var out []*mvccpb.Event
	i := sort.Search(len(f.hist), func(i int) bool { return f.hist[i].Kv.ModRevision >= fromRev })
	for i < len(f.hist) && f.hist[i].Kv.ModRevision <= toRev {
		rev := f.hist[i].Kv.ModRevision
		j := i
		var revEvs []*mvccpb.Event
		for j < len(f.hist) && f.hist[j].Kv.ModRevision == rev {
			e := f.hist[j]
			if contains(key, end, fromKey, e.Kv.Key) {
				prev := e.PrevKv
				if prev != nil && e.Kv.ModRevision-1 < f.compact {
					prev = nil
				}
				revEvs = append(revEvs, &mvccpb.Event{Type: e.Type, Kv: e.Kv, PrevKv: prev})
			}
			j++
		}
		if limit > 0 && len(out)+len(revEvs) > limit {
			return out, rev, nil
		}
		out = append(out, revEvs...)
		i = j
	}
	return out, toRev + 1, nil
}
