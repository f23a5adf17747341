package mvcc

import (
	"fmt"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/storage"
)

// DefaultLatestCacheBytes is the default budget of the latest-version cache.
const DefaultLatestCacheBytes = 64 << 20

// latestEntryOverhead is what one cached key costs beyond its key bytes:
// the map slot (string header and entry) and the map's spare room, so that
// the budget bounds the memory the cache really holds.
const latestEntryOverhead = 128

// hotValueOverhead is what holding a value costs beyond its bytes.
const hotValueOverhead = 48

// latestEntry is the metadata of a key's newest live version, and its value
// only while the key is read hot (see latestCache).
type latestEntry struct {
	main, sub, create, ver, lease int64
	value                         *hotValue // nil: the value is on the engine only
}

type hotValue struct{ b []byte }

func newLatestEntry(v *version, withValue bool) latestEntry {
	e := latestEntry{main: v.main, sub: v.sub, create: v.create, ver: v.ver, lease: v.lease}
	if withValue {
		e.value = &hotValue{b: v.value}
	}
	return e
}

// version returns the entry as a version; valued reports whether its value
// is known (otherwise value is nil).
func (e *latestEntry) version() (v version, valued bool) {
	v = version{main: e.main, sub: e.sub, create: e.create, ver: e.ver, lease: e.lease}
	if e.value != nil {
		v.value = e.value.b
		return v, true
	}
	return v, false
}

func (e *latestEntry) same(v *version) bool {
	return e.main == v.main && e.sub == v.sub && e.create == v.create && e.ver == v.ver && e.lease == v.lease
}

// latestCache holds the metadata of the newest live version of keys (create
// and mod revision, version, lease), so that a write does not read the
// engine to find the version it replaces: etcd keeps its whole key index in
// memory, metastore keeps it in the engine
// (docs/adr/0001-mvcc-index-on-the-engine.md) and this cache, bounded by a
// byte budget, in front of it (docs/adr/0015-latest-version-cache.md).
//
// Values are not cached, except for keys that point reads asked for (read
// hot keys, promote): a put's previous value is read from the engine only
// when the request or a watcher asked for prev_kv, as etcd does.
//
// An entry is exact: every change of a key's newest version goes through a
// committed Writer, which updates the cache after its batch committed
// (Writer.Commit), and background compaction never removes a key's newest
// live version. While complete, the cache holds every live key, so a miss
// means the key is absent or deleted; it starts complete when the whole key
// space fits in the budget at Open, and the newest records it reads to fill
// it do too (Reload starts it empty), and stays so until an insert
// would exceed the budget. From then on it is a cache: a miss reads the
// engine, and entries are evicted to stay within the budget.
//
// Only the Writer (the apply goroutine) changes which version an entry
// names. Readers of the newest revision use the cache too (Store.Range of a
// single key), and may attach a value they read from the engine to the entry
// of that same version (versions are immutable, so that is exact whenever
// the entry still names it). The Writer publishes the store's revision under
// mu together with the entries of that revision, so a reader sees a revision
// and the versions of exactly that revision.
type latestCache struct {
	budget int64 // bytes; 0 disables the cache

	mu       sync.RWMutex           // guards the fields below, and orders the store's revision with them
	m        map[string]latestEntry // newest live version per user key
	bytes    int64                  // cost of the entries in m
	complete bool                   // every live key is in m
}

func newLatestCache(budget int64) *latestCache {
	return &latestCache{budget: budget, m: map[string]latestEntry{}}
}

func entryCost(key string, e *latestEntry) int64 {
	n := int64(len(key)) + latestEntryOverhead
	if e.value != nil {
		n += int64(len(e.value.b)) + hotValueOverhead
	}
	return n
}

// get returns u's newest live version: known reports whether the cache can
// answer (a hit, or a miss while complete, which means u has no live
// version); valued whether v.value is the version's value.
func (c *latestCache) get(u []byte) (v version, valued, live, known bool) {
	if c.budget <= 0 {
		return version{}, false, false, false
	}
	c.mu.RLock()
	e, live := c.m[string(u)]
	known = live || c.complete
	c.mu.RUnlock()
	if live {
		v, valued = e.version()
	}
	return v, valued, live, known
}

// read is get for readers: it also returns the store's revision, read under
// the same lock as the entry, so that the version is the key's newest as of
// that revision.
func (c *latestCache) read(u []byte, rev *atomic.Int64) (v version, valued bool, cur int64, live, known bool) {
	if c.budget <= 0 {
		return version{}, false, 0, false, false
	}
	c.mu.RLock()
	e, live := c.m[string(u)]
	known = live || c.complete
	cur = rev.Load()
	c.mu.RUnlock()
	if live {
		v, valued = e.version()
	}
	return v, valued, cur, live, known
}

// fill records what the engine said is u's newest version, after a miss.
func (c *latestCache) fill(u []byte, v version, ok bool) {
	if c.budget <= 0 || !ok || v.tomb {
		return
	}
	c.mu.Lock()
	c.setLocked(string(u), &v, false)
	c.mu.Unlock()
}

// promote attaches the value of kv, which a reader read from the engine, to
// its key's entry if that still names kv's version and the value fits in the
// budget without evicting anything (values never push metadata out).
func (c *latestCache) promote(kv *mvccpb.KeyValue) {
	if c.budget <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[string(kv.Key)]
	if !ok || e.value != nil || e.main != kv.ModRevision || e.create != kv.CreateRevision || e.ver != kv.Version || e.lease != kv.Lease {
		return
	}
	extra := int64(len(kv.Value)) + hotValueOverhead
	if c.bytes+extra > c.budget {
		return
	}
	e.value = &hotValue{b: kv.Value}
	c.m[string(kv.Key)] = e
	c.bytes += extra
}

// setLocked stores v as key's newest version, a tombstone removing the key.
// The entry keeps v's value if withValue, or if the key's previous entry
// held its value (the key is read hot).
func (c *latestCache) setLocked(key string, v *version, withValue bool) {
	if old, ok := c.m[key]; ok {
		withValue = withValue || old.value != nil
		c.bytes -= entryCost(key, &old)
		delete(c.m, key)
	}
	if v.tomb {
		return
	}
	e := newLatestEntry(v, withValue)
	cost := entryCost(key, &e)
	if cost > c.budget && withValue {
		e.value = nil
		cost = entryCost(key, &e)
	}
	if cost > c.budget {
		c.complete = false
		return
	}
	if c.bytes+cost > c.budget {
		c.complete = false
		c.evictLocked(c.budget - c.budget/8 - cost)
	}
	c.m[key] = e
	c.bytes += cost
}

// evictLocked drops entries until the cache costs at most target. Map
// iteration starts at a random entry, which makes this a random eviction:
// no bookkeeping per hit, and a hot key evicted comes back at its next
// write.
func (c *latestCache) evictLocked(target int64) {
	for k, e := range c.m {
		if c.bytes <= target {
			return
		}
		c.bytes -= entryCost(k, &e)
		delete(c.m, k)
	}
}

// commit records the newest staged version of every key a committed Writer
// wrote, and calls publish (which stores the new revision) under the same
// lock.
func (c *latestCache) commit(ov *overlay, publish func()) {
	if c.budget <= 0 || ov.t.Len() == 0 {
		publish()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ov.t.Ascend(func(e *ovEntry) bool {
		c.setLocked(string(e.key), &e.versions[len(e.versions)-1], false)
		return true
	})
	publish()
}

// load refills the cache from the engine: the newest version of each key,
// in key order, until the budget is spent. It is complete if every live key
// fit. publish (which stores the store's revision) runs under the lock once
// the cache is filled.
func (c *latestCache) load(r storage.Reader, publish func()) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m, c.bytes, c.complete = map[string]latestEntry{}, 0, false
	if c.budget <= 0 {
		publish()
		return nil
	}
	if err := c.fillLocked(r); err != nil {
		c.m, c.bytes, c.complete = map[string]latestEntry{}, 0, false
		return err
	}
	publish()
	return nil
}

// reset empties the cache and leaves it incomplete, so that it fills as
// keys are written and read (a miss reads the engine), without reading the
// engine now. publish runs under the lock.
func (c *latestCache) reset(publish func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m, c.bytes, c.complete = map[string]latestEntry{}, 0, false
	publish()
}

func (c *latestCache) fillLocked(r storage.Reader) error {
	it, err := r.NewIter(storage.IterOptions{LowerBound: prefixK, UpperBound: prefixKEnd})
	if err != nil {
		return fmt.Errorf("mvcc: load latest versions: %w", err)
	}
	defer func() { _ = it.Close() }()
	var end []byte
	// read counts the record bytes the fill read. The entries hold no
	// values, but the metadata they need is in the record, next to the
	// value, so filling reads every value of the keys it loads: with
	// values in blob files, 450k entries of a 64 MiB budget are ~2.5 GB of
	// 5 KiB values to fetch and decompress (a restart at 32 GiB was ready
	// after 7.8 s instead of ~1 s). The fill stops, incomplete, once it has
	// read as many record bytes as the budget: a store that small is
	// loaded whole as before, and a larger one starts from the entries
	// read so far, which is what the cache would hold past its budget
	// anyway (docs/adr/0015-latest-version-cache.md, amendment).
	read := int64(0)
	for ok := it.First(); ok; ok = it.SeekGE(end) {
		g, main, sub, err := splitVersionKey(it.Key())
		if err != nil {
			return err
		}
		if read += int64(recordLen(it)); read > c.budget {
			return nil // incomplete: the rest stays on the engine
		}
		v, err := decodeRecord(it.Value(), main, sub, false)
		if err != nil {
			return fmt.Errorf("mvcc: load latest versions: %w", err)
		}
		if !v.tomb {
			u, err := groupUserKey(g)
			if err != nil {
				return err
			}
			e := newLatestEntry(&v, false)
			cost := entryCost(string(u), &e)
			if c.bytes+cost > c.budget {
				return nil // incomplete: the rest stays on the engine
			}
			c.m[string(u)] = e
			c.bytes += cost
		}
		end = appendGroupEnd(end[:0], g)
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("mvcc: load latest versions: %w", err)
	}
	c.complete = true
	return nil
}

// check reports every entry that differs from the engine's newest version
// of its key and, while complete, every live key missing from the cache.
func (c *latestCache) check(r storage.Reader, problem func(format string, args ...any)) error {
	if c.budget <= 0 {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	it, err := r.NewIter(storage.IterOptions{LowerBound: prefixK, UpperBound: prefixKEnd})
	if err != nil {
		return fmt.Errorf("mvcc: check latest versions: %w", err)
	}
	defer func() { _ = it.Close() }()
	seen := 0
	var end []byte
	for ok := it.First(); ok; ok = it.SeekGE(end) {
		g, main, sub, err := splitVersionKey(it.Key())
		if err != nil {
			return err
		}
		end = appendGroupEnd(end[:0], g)
		v, err := decodeRecord(it.Value(), main, sub, true)
		if err != nil {
			return err
		}
		u, err := groupUserKey(g)
		if err != nil {
			return err
		}
		cv, cached := c.m[string(u)]
		switch {
		case !cached && !v.tomb && c.complete:
			problem("latest-version cache: complete but lacks live key %q", u)
		case !cached:
		case v.tomb:
			problem("latest-version cache: holds deleted key %q", u)
		case !cv.same(&v) || (cv.value != nil && string(cv.value.b) != string(v.value)):
			problem("latest-version cache: key %q is %d_%d (create %d, version %d, lease %d), engine has %d_%d (create %d, version %d, lease %d)",
				u, cv.main, cv.sub, cv.create, cv.ver, cv.lease, v.main, v.sub, v.create, v.ver, v.lease)
		}
		if cached {
			seen++
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if seen != len(c.m) {
		problem("latest-version cache: %d entries name keys with no version", len(c.m)-seen)
	}
	var sum int64
	for k, e := range c.m {
		sum += entryCost(k, &e)
	}
	if sum != c.bytes || c.bytes > c.budget {
		problem("latest-version cache: accounts %d bytes, entries cost %d, budget %d", c.bytes, sum, c.budget)
	}
	return nil
}

// stats reports the bytes the cache's entries cost and whether it still
// holds every live key.
func (c *latestCache) stats() (bytes int64, complete bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.bytes, c.complete
}
