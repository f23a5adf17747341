package mvcc

import (
	"fmt"
	"math/rand"
	"strings"
	"sync/atomic"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

// countingEngine counts the iterators opened on the k/ space: the Writer's
// engine lookups.
type countingEngine struct {
	storage.Engine
	kIters atomic.Int64
}

func (e *countingEngine) NewIter(o storage.IterOptions) (storage.Iterator, error) {
	if string(o.LowerBound) == string(prefixK) {
		e.kIters.Add(1)
	}
	return e.Engine.NewIter(o)
}

// writerLookups runs fn in one Writer batch and reports whether the Writer
// read the engine.
func writerLookups(t *testing.T, s *Store, ce *countingEngine, fn func(tw *TxnWrite)) bool {
	t.Helper()
	before := ce.kIters.Load()
	apply(t, s, fn)
	return ce.kIters.Load() != before
}

// putReplacing puts k=v in one Writer batch, checks that the version it
// replaced has mod revision rev and version ver (what names the step in a
// failure), and reports whether the Writer read the engine.
func putReplacing(t *testing.T, s *Store, ce *countingEngine, k, v string, rev, ver int64, what string) bool {
	t.Helper()
	return writerLookups(t, s, ce, func(tw *TxnWrite) {
		if prev := tw.Put([]byte(k), []byte(v), 0); prev == nil || prev.ModRevision != rev || prev.Version != ver {
			t.Errorf("%s: prev %v, want revision %d at version %d", what, prev, rev, ver)
		}
	})
}

// A complete cache answers both "absent" and "exists" without the engine; a
// key evicted (budget exceeded) makes the Writer read the engine again; a
// Reload starts the cache empty without reading the engine, and Open fills
// it.
func TestLatestCacheSparesEngineLookups(t *testing.T) {
	ce := &countingEngine{Engine: memory.New()}
	t.Cleanup(func() { _ = ce.Close() })
	s := openStore(t, ce, WithLatestCacheBytes(4*(latestEntryOverhead+8)))
	if writerLookups(t, s, ce, func(tw *TxnWrite) { tw.Put([]byte("k1"), []byte("v1"), 0) }) {
		t.Fatal("a put of a new key into an empty store read the engine")
	}
	if writerLookups(t, s, ce, func(tw *TxnWrite) {
		if prev := tw.Put([]byte("k1"), []byte("v2"), 5); prev == nil || prev.ModRevision != 2 || prev.Version != 1 {
			t.Errorf("overwrite: prev %v, want revision 2 at version 1", prev)
		}
	}) {
		t.Fatal("an overwrite of a cached key read the engine")
	}
	// Four more keys exceed the budget: the cache is no longer complete.
	for i := 2; i <= 5; i++ {
		put(t, s, fmt.Sprintf("k%d", i), "v")
	}
	if s.latest.complete {
		t.Fatal("the cache is still complete past its budget")
	}
	if !writerLookups(t, s, ce, func(tw *TxnWrite) { tw.Put([]byte("new"), []byte("v"), 0) }) {
		t.Fatal("an incomplete cache answered a miss without the engine")
	}
	del(t, s, "k", "l")
	// Reload (after a snapshot install) reads no value: the cache starts
	// empty and incomplete, and fills as keys are written.
	before := ce.kIters.Load()
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if ce.kIters.Load() != before {
		t.Fatal("Reload read the key space")
	}
	if b, complete := s.KeyCacheStats(); complete || b != 0 {
		t.Fatalf("after Reload the cache holds %d bytes, complete %v; want empty and incomplete", b, complete)
	}
	if !putReplacing(t, s, ce, "new", "v2", 8, 1, "after Reload") {
		t.Fatal("after Reload, an empty incomplete cache answered without the engine")
	}
	if putReplacing(t, s, ce, "new", "v3", 10, 2, "second overwrite after Reload") {
		t.Fatal("the key written after Reload is not cached")
	}
	// Open fills it again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, ce, WithLatestCacheBytes(4*(latestEntryOverhead+8)))
	if !s.latest.complete {
		t.Fatal("Open of a store whose keys fit the budget left the cache incomplete")
	}
	if putReplacing(t, s, ce, "new", "v4", 11, 3, "after reopening") {
		t.Fatal("after reopening, an overwrite of a loaded key read the engine")
	}
}

// Open's fill reads at most the budget in record bytes: the entries need
// the metadata next to each value, so a store whose entries would fit but
// whose values are large is loaded only in part, and left incomplete,
// instead of reading every value at start. Writes stay exact: a key the
// fill did not load is looked up on the engine.
func TestOpenFillReadsAtMostTheBudget(t *testing.T) {
	ce := &countingEngine{Engine: memory.New()}
	t.Cleanup(func() { _ = ce.Close() })
	budget := int64(4 * (latestEntryOverhead + 8))
	s := openStore(t, ce, WithLatestCacheBytes(budget))
	big := strings.Repeat("v", 300) // three entries fit the budget, three records do not
	for _, k := range []string{"a", "b", "c"} {
		put(t, s, k, big)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, ce, WithLatestCacheBytes(budget))
	b, complete := s.KeyCacheStats()
	if complete {
		t.Fatal("Open read more record bytes than the budget to complete the cache")
	}
	if want := int64(1 + latestEntryOverhead); b != want {
		t.Fatalf("Open loaded %d bytes of entries, want one entry (%d): the first record only fits the read budget", b, want)
	}
	if !putReplacing(t, s, ce, "c", "v2", 4, 1, "overwrite of a key the fill left out") {
		t.Fatal("a key the fill left out was answered without the engine")
	}
	if putReplacing(t, s, ce, "a", "v2", 2, 1, "overwrite of the loaded key") {
		t.Fatal("an overwrite of the key the fill loaded read the engine")
	}
}

// The same random history on stores with no cache, a cache that keeps
// overflowing and a cache that holds everything gives the same events
// (prev_kv included) and the same data, and every cache stays exact
// (CheckInvariants) across puts with leases, deletes, txns of several
// operations, compactions, Reloads and reopening.
func TestLatestCacheMatchesEngine(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			budgets := []int64{0, 6 * (latestEntryOverhead + 16), 1 << 20}
			stores := make([]*Store, len(budgets))
			engs := make([]storage.Engine, len(budgets))
			for i, b := range budgets {
				engs[i] = memory.New()
				e := engs[i]
				t.Cleanup(func() { _ = e.Close() })
				stores[i] = openStore(t, e, WithLatestCacheBytes(b))
			}
			r := rand.New(rand.NewSource(seed))
			key := func() []byte { return []byte(fmt.Sprintf("k%02d", r.Intn(30))) }
			for step := 0; step < 400; step++ {
				op := r.Intn(100)
				var keys, vals [][]byte
				var leases []int64
				var delFrom, delTo []byte
				for n := 1 + r.Intn(3); n > 0; n-- {
					keys = append(keys, key())
					vals = append(vals, []byte(fmt.Sprintf("v%d", r.Intn(1000))))
					leases = append(leases, int64(r.Intn(3)))
				}
				delFrom = key()
				if r.Intn(2) == 0 {
					delTo = []byte(fmt.Sprintf("k%02d", r.Intn(30)+1))
				}
				var got []string
				for i, s := range stores {
					switch {
					case op < 80:
						evs := apply(t, s, func(tw *TxnWrite) {
							for j := range keys {
								tw.Put(keys[j], vals[j], leases[j])
							}
							if op < 20 {
								tw.DeleteRange(delFrom, delTo)
							}
						})
						got = append(got, eventsString(checkPutPrevs(t, s, evs)))
					case op < 90:
						got = append(got, eventsString(apply(t, s, func(tw *TxnWrite) { tw.DeleteRange(delFrom, delTo) })))
					case op < 95:
						if rev := s.Rev() - int64(r.Intn(5)); rev > s.CompactRev() && i == 0 {
							for _, s2 := range stores {
								waitDone(t, compact(t, s2, rev))
							}
						}
						got = append(got, "")
					case op < 98:
						if err := s.Reload(); err != nil {
							t.Fatal(err)
						}
						got = append(got, "")
					default:
						_ = s.Close()
						stores[i] = openStore(t, engs[i], WithLatestCacheBytes(budgets[i]))
						got = append(got, "")
					}
				}
				for i, s := range stores {
					got[i] += pointReads(t, s, 31)
				}
				for i := range stores {
					if got[i] != got[0] {
						t.Fatalf("step %d: budget %d gave events\n%s\nno cache gave\n%s", step, budgets[i], got[i], got[0])
					}
					if err := stores[i].CheckInvariants(); err != nil {
						t.Fatalf("step %d, budget %d: %v", step, budgets[i], err)
					}
				}
			}
			want := kvString(rng(t, stores[0], "k", "l", RangeOptions{}).KVs)
			for i, s := range stores[1:] {
				if got := kvString(rng(t, s, "k", "l", RangeOptions{}).KVs); got != want {
					t.Fatalf("budget %d: data %s, want %s", budgets[i+1], got, want)
				}
			}
		})
	}
}

// pointReads renders single-key ranges of keys k00..k<n-1> at the newest
// revision, in their variants (count only, keys only, at the current
// revision explicitly).
func pointReads(t *testing.T, s *Store, n int) string {
	t.Helper()
	var out string
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("k%02d", i)
		r := rng(t, s, k, "", RangeOptions{})
		c := rng(t, s, k, "", RangeOptions{Count: true})
		ko := rng(t, s, k, "", RangeOptions{KeysOnly: true, Rev: s.Rev()})
		out += fmt.Sprintf("%s: rev %d %s/%d %d/%d %s\n", k, r.Rev, kvString(r.KVs), r.Count, len(c.KVs), c.Count, kvString(ko.KVs))
	}
	return out
}

// A reader of one key at the newest revision sees the revision and the
// key's version of that same revision, while the Writer commits: a key
// written by every txn has its mod revision equal to the revision read.
func TestLatestCachePointReadsMatchRevision(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, "hot", "2") // revision 2
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for {
			select {
			case <-done:
				return
			default:
			}
			r, err := s.Range(ctx, []byte("hot"), nil, RangeOptions{})
			if err != nil {
				errc <- err
				return
			}
			if len(r.KVs) != 1 || r.KVs[0].ModRevision != r.Rev || string(r.KVs[0].Value) != fmt.Sprint(r.Rev) {
				errc <- fmt.Errorf("read at revision %d: %s", r.Rev, kvString(r.KVs))
				return
			}
		}
	}()
	// Each txn also writes keys that sort before "hot", so that the
	// cache's update of a commit takes long enough for readers to land in
	// the middle of it.
	for i := 0; i < 100; i++ {
		apply(t, s, func(tw *TxnWrite) {
			for j := 0; j < 200; j++ {
				tw.Put([]byte(fmt.Sprintf("a%03d", j)), []byte("v"), 0)
			}
			tw.Put([]byte("hot"), []byte(fmt.Sprint(tw.Rev())), 0)
		})
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// checkPutPrevs checks the PrevKv of every put event that carries one (a
// Writer attaches it only when it had the value at hand: a hot key, or one
// it staged) against the store's version at the revision before, and
// returns the events without them, so that stores with different caches
// compare equal.
func checkPutPrevs(t *testing.T, s *Store, evs []*mvccpb.Event) []*mvccpb.Event {
	t.Helper()
	out := make([]*mvccpb.Event, len(evs))
	for i, ev := range evs {
		out[i] = ev
		if ev.Type != mvccpb.Event_PUT {
			continue
		}
		// A prev from the same revision is the txn's own earlier put of
		// the key (which etcd's txn validation forbids).
		if ev.PrevKv != nil && ev.PrevKv.ModRevision != ev.Kv.ModRevision {
			want, err := s.PrevKV(ctx, ev.Kv.Key, ev.Kv.ModRevision-1)
			if err != nil {
				t.Fatal(err)
			}
			if got, w := kvString([]*mvccpb.KeyValue{ev.PrevKv}), kvString([]*mvccpb.KeyValue{want}); want == nil || got != w {
				t.Fatalf("put event of %q carries prev %s, the store has %s", ev.Kv.Key, got, w)
			}
		}
		out[i] = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
	}
	return out
}

func eventsString(evs []*mvccpb.Event) string {
	var s string
	for _, ev := range evs {
		s += fmt.Sprintf("%v %s|", ev.Type, kvString([]*mvccpb.KeyValue{ev.Kv}))
		if ev.PrevKv != nil {
			s += "prev " + kvString([]*mvccpb.KeyValue{ev.PrevKv})
		}
		s += "\n"
	}
	return s
}
