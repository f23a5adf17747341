package mvcc

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/metastore/metastore/internal/storage"
)

// DefaultLatestCacheBytes is the default budget of the latest-version cache.
const DefaultLatestCacheBytes = 64 << 20

// latestEntryOverhead is what one cached key costs beyond its key and value
// bytes: the map slot (string header and version) and the map's spare room,
// so that the budget bounds the memory the cache really holds.
const latestEntryOverhead = 128

// latestCache holds the newest live version (metadata and value) of keys, so
// that a write does not read the engine to find the version it replaces:
// etcd keeps its whole key index in memory, metastore keeps it in the engine
// (docs/adr/0001-mvcc-index-on-the-engine.md) and this cache, bounded by a
// byte budget, in front of it (docs/adr/0015-latest-version-cache.md).
//
// An entry is exact: every change of a key's newest version goes through a
// committed Writer, which updates the cache after its batch committed
// (Writer.Commit), and background compaction never removes a key's newest
// live version. While complete, the cache holds every live key, so a miss
// means the key is absent or deleted; it starts complete when the whole key
// space fits in the budget at Open (or Reload) and stays so until an insert
// would exceed the budget. From then on it is a cache: a miss reads the
// engine, and entries are evicted to stay within the budget.
//
// Only the Writer (the apply goroutine) updates the cache. Readers of the
// newest revision use it too (Store.Range of a single key): the Writer
// publishes the store's revision under mu together with the entries of that
// revision, so a reader sees a revision and the versions of exactly that
// revision.
type latestCache struct {
	budget int64 // bytes; 0 disables the cache

	mu       sync.RWMutex       // guards the fields below, and orders the store's revision with them
	m        map[string]version // newest live version per user key
	bytes    int64              // cost of the entries in m
	complete bool               // every live key is in m
}

func newLatestCache(budget int64) *latestCache {
	return &latestCache{budget: budget, m: map[string]version{}}
}

func entryCost(key string, v *version) int64 {
	return int64(len(key)+len(v.value)) + latestEntryOverhead
}

// get returns u's newest live version: known reports whether the cache can
// answer (a hit, or a miss while complete, which means u has no live
// version).
func (c *latestCache) get(u []byte) (v version, live, known bool) {
	if c.budget <= 0 {
		return version{}, false, false
	}
	c.mu.RLock()
	v, live = c.m[string(u)]
	known = live || c.complete
	c.mu.RUnlock()
	return v, live, known
}

// read is get for readers: it also returns the store's revision, read under
// the same lock as the entry, so that the version is the key's newest as of
// that revision.
func (c *latestCache) read(u []byte, rev *atomic.Int64) (v version, cur int64, live, known bool) {
	if c.budget <= 0 {
		return version{}, 0, false, false
	}
	c.mu.RLock()
	v, live = c.m[string(u)]
	known = live || c.complete
	cur = rev.Load()
	c.mu.RUnlock()
	return v, cur, live, known
}

// fill records what the engine said is u's newest version, after a miss.
func (c *latestCache) fill(u []byte, v version, ok bool) {
	if c.budget <= 0 || !ok || v.tomb {
		return
	}
	c.mu.Lock()
	c.setLocked(string(u), v)
	c.mu.Unlock()
}

// setLocked stores v as key's newest version, a tombstone removing the key.
func (c *latestCache) setLocked(key string, v version) {
	if old, ok := c.m[key]; ok {
		c.bytes -= entryCost(key, &old)
		delete(c.m, key)
	}
	if v.tomb {
		return
	}
	cost := entryCost(key, &v)
	if cost > c.budget {
		c.complete = false
		return
	}
	if c.bytes+cost > c.budget {
		c.complete = false
		c.evictLocked(c.budget - c.budget/8 - cost)
	}
	c.m[key] = v
	c.bytes += cost
}

// evictLocked drops entries until the cache costs at most target. Map
// iteration starts at a random entry, which makes this a random eviction:
// no bookkeeping per hit, and a hot key evicted comes back at its next
// write.
func (c *latestCache) evictLocked(target int64) {
	for k, v := range c.m {
		if c.bytes <= target {
			return
		}
		c.bytes -= entryCost(k, &v)
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
		c.setLocked(string(e.key), e.versions[len(e.versions)-1])
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
	c.m, c.bytes, c.complete = map[string]version{}, 0, false
	if c.budget <= 0 {
		publish()
		return nil
	}
	if err := c.fillLocked(r); err != nil {
		c.m, c.bytes, c.complete = map[string]version{}, 0, false
		return err
	}
	publish()
	return nil
}

func (c *latestCache) fillLocked(r storage.Reader) error {
	it, err := r.NewIter(storage.IterOptions{LowerBound: prefixK, UpperBound: prefixKEnd})
	if err != nil {
		return fmt.Errorf("mvcc: load latest versions: %w", err)
	}
	defer func() { _ = it.Close() }()
	var end []byte
	for ok := it.First(); ok; ok = it.SeekGE(end) {
		g, main, sub, err := splitVersionKey(it.Key())
		if err != nil {
			return err
		}
		v, err := decodeRecord(it.Value(), main, sub, true)
		if err != nil {
			return fmt.Errorf("mvcc: load latest versions: %w", err)
		}
		if !v.tomb {
			u, err := groupUserKey(g)
			if err != nil {
				return err
			}
			cost := entryCost(string(u), &v)
			if c.bytes+cost > c.budget {
				return nil // incomplete: the rest stays on the engine
			}
			c.m[string(u)] = v
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
		case cv.main != v.main || cv.sub != v.sub || cv.create != v.create || cv.ver != v.ver ||
			cv.lease != v.lease || string(cv.value) != string(v.value):
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
	for k, v := range c.m {
		sum += entryCost(k, &v)
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
