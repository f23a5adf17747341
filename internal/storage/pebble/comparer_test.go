package pebble

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/metastore/metastore/internal/storage"
)

// versionKey builds a k/ version key the way mvcc does (user keys here hold
// no 0x00, so no escaping is needed).
func versionKey(u string, rev uint64) []byte {
	k := append(append([]byte(nil), storage.PrefixMVCCKey...), u...)
	k = append(k, 0x00, 0x01)
	k = binary.BigEndian.AppendUint64(k, ^rev)
	return binary.BigEndian.AppendUint64(k, ^uint64(0))
}

func group(u string) []byte {
	return append(append(append([]byte(nil), storage.PrefixMVCCKey...), u...), 0x00, 0x01)
}

// seekVersions writes versions of many keys, flushes them into tables (by
// reopening) and checks that SeekPrefixGE finds exactly the keys that have
// versions: the tables' filters hold groups, not whole keys.
func seekVersions(t *testing.T, e *Engine) {
	t.Helper()
	b := e.NewBatch()
	for i := 0; i < 2000; i += 2 {
		for rev := uint64(1); rev <= 2; rev++ {
			if err := b.Set(versionKey(fmt.Sprintf("key-%05d", i), rev+uint64(i)), []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
}

func checkSeekVersions(t *testing.T, e *Engine) {
	t.Helper()
	it, err := e.NewIter(storage.IterOptions{LowerBound: storage.PrefixMVCCKey, UpperBound: storage.PrefixEnd(storage.PrefixMVCCKey)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	ps := it.(storage.PrefixSeeker)
	for i := 0; i < 2000; i++ {
		g := group(fmt.Sprintf("key-%05d", i))
		ok := ps.SeekPrefixGE(g)
		found := ok && len(it.Key()) == len(g)+16 && string(it.Key()[:len(g)]) == string(g)
		if found != (i%2 == 0) {
			t.Fatalf("key %d: found %v", i, found)
		}
		if found && string(it.Key()) != string(versionKey(fmt.Sprintf("key-%05d", i), 2+uint64(i))) {
			t.Fatalf("key %d: newest version not first: %x", i, it.Key())
		}
	}
}

func TestNewStoreUsesPrefixFilters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	e, err := Open(dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	if !e.prefixFilters {
		t.Fatal("a new store does not use the MVCC prefix comparer")
	}
	seekVersions(t, e)
	checkSeekVersions(t, e) // memtable
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openAt(t, dir, testOptions)
	if !e.prefixFilters {
		t.Fatal("reopened store lost the MVCC prefix comparer")
	}
	checkSeekVersions(t, e) // tables
}

// makeDefaultComparerStore creates at dir a store as the releases before
// the MVCC comparer made it (Pebble's default comparer), holding the
// key/value pairs kv.
func makeDefaultComparerStore(t *testing.T, dir string, kv ...[]byte) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if err := db.Set(kv[i], kv[i+1], pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// A store made with Pebble's default comparer (every store before prefix
// filters) opens with that comparer and seeks without filters.
func TestStoreWithDefaultComparerStillOpens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	makeDefaultComparerStore(t, dir, versionKey("old", 1), []byte("v"))
	e, err := Open(dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	if e.prefixFilters {
		t.Fatal("an old store was opened with the MVCC prefix comparer")
	}
	if v, err := e.Get(versionKey("old", 1)); err != nil || string(v) != "v" {
		t.Fatalf("old data: %q %v", v, err)
	}
	seekVersions(t, e)
	checkSeekVersions(t, e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openAt(t, dir, testOptions)
	if e.prefixFilters {
		t.Fatal("reopened old store switched comparer")
	}
	checkSeekVersions(t, e)
}
