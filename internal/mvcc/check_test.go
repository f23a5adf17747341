package mvcc

import (
	"strings"
	"testing"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

// checkHistory writes history (compare compact_test.go), compacts at 6 and
// waits for it, then writes
//
//	11 put a=4  12 del d  13 put c=2
//
// leaving a@9,11  b@3,7  c@6,8t,13  d@10,12t.
func checkHistory(t *testing.T, s *Store) {
	history(t, s)
	waitDone(t, compact(t, s, 6))
	put(t, s, "a", "4")
	del(t, s, "d", "")
	put(t, s, "c", "2")
}

// TestCheckInvariantsCatchesCorruption breaks a consistent store in each way
// CheckInvariants looks for, directly on the engine, and expects the check
// to name the problem.
func TestCheckInvariantsCatchesCorruption(t *testing.T) {
	live := func(create, ver int64) []byte {
		return appendRecord(nil, &version{create: create, ver: ver, value: []byte("v")})
	}
	tomb := appendRecord(nil, &version{tomb: true})
	for _, tc := range []struct {
		name    string
		corrupt func(b storage.Batch) error
		want    string
	}{
		{"history record removed", func(b storage.Batch) error {
			return b.Delete(historyKey(7, 0))
		}, `key "b": version 7.0 has no history record`},
		{"version removed from the key index", func(b storage.Batch) error {
			return b.Delete(versionKey(keyGroup([]byte("b")), 7, 0))
		}, `history record 7.0 (key "b") has no version`},
		{"history names another key", func(b storage.Batch) error {
			return b.Set(historyKey(7, 0), appendHistory(nil, []byte("x"), false))
		}, `has history record for key "x"`},
		{"history flag disagrees", func(b storage.Batch) error {
			return b.Set(historyKey(7, 0), appendHistory(nil, []byte("b"), true))
		}, `(tombstone true)`},
		{"version number skips", func(b storage.Batch) error {
			return b.Set(versionKey(keyGroup([]byte("a")), 11, 0), live(9, 5))
		}, `key "a": version 11.0 (create 9, version 5) does not continue 9.0 (create 9, version 1)`},
		{"generation not restarted after a tombstone", func(b storage.Batch) error {
			return b.Set(versionKey(keyGroup([]byte("c")), 13, 0), live(6, 2))
		}, `key "c": version 13.0 after tombstone 8.0 does not start a generation`},
		{"tombstone after a tombstone", func(b storage.Batch) error {
			if err := b.Set(versionKey(keyGroup([]byte("d")), 13, 1), tomb); err != nil {
				return err
			}
			return b.Set(historyKey(13, 1), appendHistory(nil, []byte("d"), true))
		}, `key "d": tombstone 13.1 follows tombstone 12.0`},
		{"tombstone kept below the compaction", func(b storage.Batch) error {
			if err := b.Set(versionKey(keyGroup([]byte("a")), 5, 0), tomb); err != nil {
				return err
			}
			return b.Set(historyKey(5, 0), appendHistory(nil, []byte("a"), true))
		}, `key "a": tombstone 5.0 survived the finished compaction at 6`},
		{"old version kept below the compaction", func(b storage.Batch) error {
			if err := b.Set(versionKey(keyGroup([]byte("b")), 2, 0), live(2, 1)); err != nil {
				return err
			}
			return b.Set(historyKey(2, 0), appendHistory(nil, []byte("b"), false))
		}, `key "b": 2 versions at or below the finished compaction 6`},
		{"generation start lost above the compaction", func(b storage.Batch) error {
			if err := b.Delete(versionKey(keyGroup([]byte("b")), 3, 0)); err != nil {
				return err
			}
			return b.Delete(historyKey(3, 0))
		}, `key "b": oldest version 7.0 is version 2 of a generation created at 3, above any compaction`},
		{"key count", func(b storage.Batch) error {
			return b.Set(keyKeyCount, putInt64(4))
		}, `persisted key count 4, but 3 keys are live`},
		{"logical size", func(b storage.Batch) error {
			return b.Set(keyWrittenBytes, putInt64(1))
		}, `persisted logical size`},
		{"revision below a version", func(b storage.Batch) error {
			return b.Set(storage.KeyCurrentRevision, putInt64(12))
		}, `key "c": version 13.0 is outside revisions [1, 12]`},
		{"compaction above the revision", func(b storage.Batch) error {
			return b.Set(storage.KeyScheduledCompact, putInt64(14))
		}, `scheduled compaction 14 is above the current revision 13`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := memory.New()
			t.Cleanup(func() { _ = eng.Close() })
			// Not openStore: its cleanup would fail the test on the
			// corruption made on purpose.
			s, err := Open(eng, nil, WithCompactionSleepInterval(0))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			checkHistory(t, s)
			if err := s.CheckInvariants(); err != nil {
				t.Fatalf("before corruption: %v", err)
			}
			b := eng.NewBatch()
			defer b.Close()
			if err := tc.corrupt(b); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(false); err != nil {
				t.Fatal(err)
			}
			err = s.CheckInvariants()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckInvariants after corruption = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A published counter that disagrees with the engine is caught too.
func TestCheckInvariantsComparesPublishedCounters(t *testing.T) {
	s, _ := newStore(t)
	checkHistory(t, s)
	s.keyCount.Add(1)
	defer s.keyCount.Add(-1) // leave the store consistent for openStore's check
	err := s.CheckInvariants()
	if err == nil || !strings.Contains(err.Error(), "published key count 4, persisted 3") {
		t.Fatalf("CheckInvariants = %v", err)
	}
}

// TestCompactedBetween: the version checks accept the gaps a compaction
// under way leaves (it removes a key's old versions newest first, in batches
// that may end inside a key:
// TestHashGivesUpWithItsContext's store is checked while one rests) and no
// other: a gap above the compaction's revision is still a problem.
func TestCompactedBetween(t *testing.T) {
	for _, tc := range []struct {
		name      string
		v, p      version
		compacted int64
		want      bool
	}{
		{"versions skipped below the compaction", version{main: 46, create: 2, ver: 12}, version{main: 38, create: 2, ver: 10}, 49, true},
		{"a removed tombstone below the compaction", version{main: 30, create: 30, ver: 1}, version{main: 10, create: 2, ver: 3}, 49, true},
		{"versions skipped above the compaction", version{main: 46, create: 2, ver: 12}, version{main: 38, create: 2, ver: 10}, 20, false},
		{"no compaction", version{main: 46, create: 2, ver: 12}, version{main: 38, create: 2, ver: 10}, 0, false},
		{"a version going back", version{main: 46, create: 2, ver: 9}, version{main: 38, create: 2, ver: 10}, 49, false},
		{"another generation older than the survivor", version{main: 46, create: 5, ver: 3}, version{main: 38, create: 2, ver: 10}, 49, false},
	} {
		if got := compactedBetween(&tc.v, &tc.p, tc.compacted); got != tc.want {
			t.Errorf("%s: compactedBetween = %v, want %v", tc.name, got, tc.want)
		}
	}
}
