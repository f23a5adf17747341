package mvcc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/metastore/metastore/internal/storage"
)

// maxCheckProblems bounds how many problems CheckInvariants reports; a
// badly broken store would otherwise produce one per version.
const maxCheckProblems = 20

// CheckInvariants reads the whole MVCC key space from one engine snapshot
// and reports every way it disagrees with itself or with the store's
// published counters (nil if none):
//
//   - every k/ version has exactly one h/ history record at its revision,
//     naming the same user key with the same tombstone flag, and every
//     history record has its version;
//   - 1 <= every revision <= the current revision, and the finished
//     compaction <= the scheduled one <= the current revision;
//   - along a key's versions, oldest to newest: a live version right after a
//     tombstone starts a generation (create revision = its own revision,
//     version 1), a live version right after a live one continues it (same
//     create revision, version + 1), a tombstone never follows a tombstone;
//     the oldest surviving version may sit mid-generation only if a
//     compaction removed what came before it;
//   - the finished compaction left, per key, at most one version at or below
//     it, and that one is not a tombstone older than it;
//   - every entry of the latest-version cache equals its key's newest
//     version, and a complete cache holds every live key;
//   - the live key count and the logical size persisted in the store's
//     metadata equal what the versions add up to, and (unless the store was
//     closed, after which another Store may own the engine) the store's
//     published revision, compaction revision and key count equal the
//     persisted ones.
//
// Background compaction may run meanwhile (it deletes in an order every
// point-in-time view finds consistent), but no Writer may commit while it
// runs: tests call it when they are done with the store, as bbolt's tests
// check their file after each test.
func (s *Store) CheckInvariants() error {
	c := &checker{}
	rev, compact, keyCount := s.currentRev.Load(), s.compactRev.Load(), s.keyCount.Load()
	snap := s.eng.NewSnapshot()
	defer func() { _ = snap.Close() }()
	if err := c.check(snap); err != nil {
		return err
	}
	if s.closed.Load() {
		return c.result()
	}
	// The published counters, read before the snapshot, must match what it
	// holds: no Writer committed meanwhile, and compaction changes neither.
	if rev != c.cur {
		c.problem("published revision %d, persisted %d", rev, c.cur)
	}
	wantCompact := int64(-1)
	if c.finishedOK {
		wantCompact = c.finished
	}
	if c.scheduledOK && c.scheduled > wantCompact {
		wantCompact = c.scheduled
	}
	if compact != wantCompact {
		c.problem("published compaction revision %d, persisted %d", compact, wantCompact)
	}
	if keyCount != c.keyCount {
		c.problem("published key count %d, persisted %d", keyCount, c.keyCount)
	}
	if err := s.latest.check(snap, c.problem); err != nil {
		return err
	}
	return c.result()
}

// checker accumulates what CheckInvariants found.
type checker struct {
	problems []string
	dropped  int

	cur                   int64
	finished, scheduled   int64
	finishedOK            bool
	scheduledOK           bool
	keyCount              int64
	written, compactedLen int64
}

func (c *checker) problem(format string, args ...any) {
	if len(c.problems) == maxCheckProblems {
		c.dropped++
		return
	}
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *checker) result() error {
	if len(c.problems) == 0 {
		return nil
	}
	msg := "mvcc: invariants violated:"
	for _, p := range c.problems {
		msg += "\n\t" + p
	}
	if c.dropped > 0 {
		msg += fmt.Sprintf("\n\t(and %d more)", c.dropped)
	}
	return errors.New(msg)
}

// histRec is one h/ record: the user key it names and its flag.
type histRec struct {
	key  string
	tomb bool
}

type revKey struct{ main, sub int64 }

func (c *checker) check(r storage.Reader) error {
	var err error
	if c.cur, err = readMeta(r, storage.KeyCurrentRevision, 1); err != nil {
		return err
	}
	if c.cur < 1 {
		c.cur = 1 // as Store.load reads it
	}
	if c.finished, c.finishedOK, err = readInt64(r, storage.KeyCompactRevision); err != nil {
		return err
	}
	if c.scheduled, c.scheduledOK, err = readInt64(r, storage.KeyScheduledCompact); err != nil {
		return err
	}
	if c.keyCount, err = readMeta(r, keyKeyCount, 0); err != nil {
		return err
	}
	if c.written, err = readMeta(r, keyWrittenBytes, 0); err != nil {
		return err
	}
	if c.compactedLen, err = readMeta(r, keyCompactedBytes, 0); err != nil {
		return err
	}
	if c.finishedOK && c.scheduledOK && c.finished > c.scheduled {
		c.problem("finished compaction %d is above the scheduled one %d", c.finished, c.scheduled)
	}
	if c.scheduledOK && c.scheduled > c.cur {
		c.problem("scheduled compaction %d is above the current revision %d", c.scheduled, c.cur)
	}
	if c.finishedOK && c.finished > c.cur {
		c.problem("finished compaction %d is above the current revision %d", c.finished, c.cur)
	}

	hist, err := c.readHistory(r)
	if err != nil {
		return err
	}
	live, size, err := c.walkVersions(r, hist)
	if err != nil {
		return err
	}
	for rk, h := range hist {
		c.problem("history record %d.%d (key %q) has no version", rk.main, rk.sub, h.key)
	}
	if live != c.keyCount {
		c.problem("persisted key count %d, but %d keys are live", c.keyCount, live)
	}
	if logical := c.written - c.compactedLen; logical != size {
		c.problem("persisted logical size %d (written %d - compacted %d), but the versions add up to %d",
			logical, c.written, c.compactedLen, size)
	}
	return nil
}

// readMeta reads an int64 metadata key, def when it is absent.
func readMeta(r storage.Reader, key []byte, def int64) (int64, error) {
	v, ok, err := readInt64(r, key)
	if !ok || err != nil {
		return def, err
	}
	return v, nil
}

// readHistory loads every h/ record, checking its key and revision.
func (c *checker) readHistory(r storage.Reader) (map[revKey]histRec, error) {
	it, err := r.NewIter(storage.IterOptions{LowerBound: prefixH, UpperBound: storage.PrefixEnd(prefixH)})
	if err != nil {
		return nil, fmt.Errorf("mvcc: check: open history iterator: %w", err)
	}
	defer func() { _ = it.Close() }()
	hist := make(map[revKey]histRec)
	for ok := it.First(); ok; ok = it.Next() {
		main, sub, err := splitHistoryKey(it.Key())
		if err != nil {
			c.problem("%v", err)
			continue
		}
		u, tomb, err := decodeHistory(it.Value())
		if err != nil {
			c.problem("history record %d.%d: %v", main, sub, err)
			continue
		}
		if main < 1 || main > c.cur || sub < 0 {
			c.problem("history record %d.%d is outside revisions [1, %d]", main, sub, c.cur)
		}
		hist[revKey{main, sub}] = histRec{key: string(u), tomb: tomb}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("mvcc: check: history scan: %w", err)
	}
	return hist, nil
}

// walkVersions checks every k/ version against the history (removing the
// records it matched from hist) and against its key's other versions; it
// returns the number of live keys and the logical size of all versions.
func (c *checker) walkVersions(r storage.Reader, hist map[revKey]histRec) (live, size int64, err error) {
	it, err := r.NewIter(storage.IterOptions{LowerBound: prefixK, UpperBound: prefixKEnd})
	if err != nil {
		return 0, 0, fmt.Errorf("mvcc: check: open version iterator: %w", err)
	}
	defer func() { _ = it.Close() }()
	var group []byte
	var versions []version // the current group's versions, newest first
	flush := func() {
		if group == nil {
			return
		}
		if c.checkGroup(group, versions) {
			live++
		}
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		g, main, sub, err := splitVersionKey(k)
		if err != nil {
			c.problem("%v", err)
			continue
		}
		if !bytes.Equal(g, group) {
			flush()
			group, versions = append(group[:0], g...), versions[:0]
		}
		v, err := decodeRecord(it.Value(), main, sub, false)
		if err != nil {
			c.problem("version %q: %v", k, err)
			continue
		}
		versions = append(versions, v)
		size += versionSize(len(k), len(it.Value()), len(prefixH)+16, len(g))
		u, err := groupUserKey(g)
		if err != nil {
			c.problem("version %q: %v", k, err)
			continue
		}
		if main < 1 || main > c.cur || sub < 0 {
			c.problem("key %q: version %d.%d is outside revisions [1, %d]", u, main, sub, c.cur)
		}
		h, ok := hist[revKey{main, sub}]
		switch {
		case !ok:
			c.problem("key %q: version %d.%d has no history record", u, main, sub)
		case h.key != string(u) || h.tomb != v.tomb:
			c.problem("key %q: version %d.%d (tombstone %v) has history record for key %q (tombstone %v)",
				u, main, sub, v.tomb, h.key, h.tomb)
		}
		delete(hist, revKey{main, sub})
	}
	if err := it.Error(); err != nil {
		return 0, 0, fmt.Errorf("mvcc: check: version scan: %w", err)
	}
	flush()
	return live, size, nil
}

// checkGroup checks one key's versions (newest first) and reports whether
// the key is live.
func (c *checker) checkGroup(group []byte, versions []version) bool {
	if len(versions) == 0 {
		return false
	}
	u, _ := groupUserKey(group) // a bad escape was reported per version
	// Compaction only ever removes versions at or below the scheduled
	// compaction revision.
	compacted := int64(0)
	if c.scheduledOK {
		compacted = c.scheduled
	}
	atOrBelowFinished := 0
	for i := len(versions) - 1; i >= 0; i-- {
		v := &versions[i]
		if c.finishedOK && v.main <= c.finished {
			atOrBelowFinished++
			if v.tomb && v.main < c.finished {
				c.problem("key %q: tombstone %d.%d survived the finished compaction at %d", u, v.main, v.sub, c.finished)
			}
		}
		if v.tomb {
			if i+1 < len(versions) && versions[i+1].tomb {
				c.problem("key %q: tombstone %d.%d follows tombstone %d.%d", u, v.main, v.sub, versions[i+1].main, versions[i+1].sub)
			}
			continue
		}
		if v.ver < 1 || v.create < 1 || v.create > v.main || (v.ver == 1 && v.create != v.main) {
			c.problem("key %q: version %d.%d has create revision %d and version %d", u, v.main, v.sub, v.create, v.ver)
			continue
		}
		if i+1 == len(versions) {
			// The oldest surviving version: mid-generation only if a
			// compaction removed its predecessors.
			if v.ver > 1 && v.main > compacted {
				c.problem("key %q: oldest version %d.%d is version %d of a generation created at %d, above any compaction",
					u, v.main, v.sub, v.ver, v.create)
			}
			continue
		}
		p := &versions[i+1]
		switch {
		case p.tomb && (v.create != v.main || v.ver != 1):
			c.problem("key %q: version %d.%d after tombstone %d.%d does not start a generation (create %d, version %d)",
				u, v.main, v.sub, p.main, p.sub, v.create, v.ver)
		case !p.tomb && (v.create != p.create || v.ver != p.ver+1) && !compactedBetween(v, p, compacted):
			c.problem("key %q: version %d.%d (create %d, version %d) does not continue %d.%d (create %d, version %d)",
				u, v.main, v.sub, v.create, v.ver, p.main, p.sub, p.create, p.ver)
		}
	}
	if atOrBelowFinished > 1 {
		c.problem("key %q: %d versions at or below the finished compaction %d", u, atOrBelowFinished, c.finished)
	}
	return !versions[0].tomb
}

// compactedBetween reports whether the gap between version v and the older
// surviving version p of the same key can be the work of a compaction
// still under way: it removes the versions at or below its revision (all
// but the newest) newest first, in batches that may end inside a key
// (internal/mvcc/compact.go), so until it finishes the survivors may skip
// versions — and a tombstone that ended p's generation — but p is at or
// below the compaction's revision
// and v still belongs to p's generation at a later version, or to one
// created after p.
func compactedBetween(v, p *version, compacted int64) bool {
	if p.main > compacted {
		return false
	}
	return (v.create == p.create && v.ver > p.ver) || v.create > p.main
}
