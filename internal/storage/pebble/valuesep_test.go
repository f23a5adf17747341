package pebble

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/metastore/metastore/internal/storage"
)

func bigValue(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("%06d", i)), 400) // 2400 bytes
}

// writeFamilies writes n large MVCC values, n large Raft entries and one
// small value, committed with sync.
func writeFamilies(t *testing.T, e *Engine, n int) {
	t.Helper()
	b := e.NewBatch()
	defer b.Close()
	for i := range n {
		if err := b.Set(versionKey(fmt.Sprintf("key%04d", i), 1), bigValue(i)); err != nil {
			t.Fatal(err)
		}
		if err := b.Set(storage.RaftEntryKey(uint64(i+1)), bigValue(-i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Set(versionKey("small", 1), []byte("tiny")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
}

// checkFamilies reads back what writeFamilies wrote and reports whether
// the large values are kept apart from the keys (in blob files).
func checkFamilies(t *testing.T, e *Engine, n int) (separated bool) {
	t.Helper()
	for i := range n {
		if v, err := e.Get(versionKey(fmt.Sprintf("key%04d", i), 1)); err != nil || !bytes.Equal(v, bigValue(i)) {
			t.Fatalf("key %d: %d bytes, %v", i, len(v), err)
		}
		if v, err := e.Get(storage.RaftEntryKey(uint64(i + 1))); err != nil || !bytes.Equal(v, bigValue(-i)) {
			t.Fatalf("entry %d: %d bytes, %v", i+1, len(v), err)
		}
	}
	it, err := e.NewIter(storage.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	separated = true
	for ok := it.First(); ok; ok = it.Next() {
		pi := it.(*iterator)
		lv := pi.it.LazyValue()
		if got := pi.ValueLen(); got != lv.Len() || (bytes.Equal(it.Key(), versionKey("small", 1)) && got != 4) {
			t.Fatalf("ValueLen of %q = %d", it.Key(), got)
		}
		// (A value written before, in a table of an older format, stays
		// inline until a compaction merges its table with others.)
		if lv.Len() >= valueSepMinSize && lv.Fetcher == nil && !bytes.Equal(it.Key(), versionKey("old", 1)) {
			separated = false
		}
		if lv.Len() < valueSepMinSize && lv.Fetcher != nil {
			t.Fatalf("a %d-byte value was separated", lv.Len())
		}
	}
	return separated
}

// TestValueSeparation: once flushed, large values live in blob files, in
// files of their own per key family (span policy), small ones inline; all
// read back intact, also after a reopen.
func TestValueSeparation(t *testing.T) {
	dir := t.TempDir()
	e := openAt(t, dir, testOptions)
	writeFamilies(t, e, 200)
	if err := e.CompactAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !checkFamilies(t, e, 200) {
		t.Fatal("large values are still inline after a compaction")
	}
	m := e.db.Metrics()
	if m.BlobFiles.LiveCount < 2 {
		t.Fatalf("%d live blob files, want one per key family at least", m.BlobFiles.LiveCount)
	}
	tables, err := e.db.SSTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, level := range tables {
		for _, tb := range level {
			lo, hi := tb.Smallest.UserKey, tb.Largest.UserKey
			if bytes.HasPrefix(lo, storage.PrefixRaft) != bytes.HasPrefix(hi, storage.PrefixRaft) ||
				bytes.HasPrefix(lo, storage.PrefixMVCCKey) != bytes.HasPrefix(hi, storage.PrefixMVCCKey) {
				t.Fatalf("a table spans key families: %q .. %q", lo, hi)
			}
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openAt(t, dir, testOptions)
	if !checkFamilies(t, e, 200) {
		t.Fatal("large values inline after a reopen")
	}
}

// TestValueSeparationOpensOlderStores: stores written by a Pebble format
// before value separation (with either comparer) open, keep their data,
// are ratcheted to the current format, and write new large values to blob
// files.
func TestValueSeparationOpensOlderStores(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format pebble.FormatMajorVersion
		cmp    *pebble.Comparer
	}{
		{"columnar-blocks/default-comparer", pebble.FormatColumnarBlocks, pebble.DefaultComparer},
		{"table-v6/mvcc-comparer", pebble.FormatTableFormatV6, mvccComparer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: tc.format, Comparer: tc.cmp})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Set(versionKey("old", 1), bigValue(7), pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if err := db.Flush(); err != nil { // the old value in an old-format table
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			e := openAt(t, dir, testOptions)
			if got := e.db.FormatMajorVersion(); got != pebble.FormatNewest || got < pebble.FormatValueSeparation {
				t.Fatalf("format %s after open, want %s", got, pebble.FormatNewest)
			}
			if v, err := e.Get(versionKey("old", 1)); err != nil || !bytes.Equal(v, bigValue(7)) {
				t.Fatalf("old value: %d bytes, %v", len(v), err)
			}
			writeFamilies(t, e, 50)
			if err := e.CompactAll(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !checkFamilies(t, e, 50) {
				t.Fatal("new large values inline after a compaction")
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			e = openAt(t, dir, testOptions)
			if v, err := e.Get(versionKey("old", 1)); err != nil || !bytes.Equal(v, bigValue(7)) {
				t.Fatalf("old value after reopen: %d bytes, %v", len(v), err)
			}
			checkFamilies(t, e, 50)
		})
	}
}

func TestSpanPolicySplitsFamilies(t *testing.T) {
	for _, tc := range []struct{ start, end string }{
		{"", "k/"}, {"a/x", "k/"}, {"k/", "k0"}, {"k/\xff\xff", "k0"}, {"k0", "r/"}, {"l/", "r/"},
		{"m/current_revision", "r/"}, {"r/e/\x00", "r0"}, {"r0", "s/"}, {"s/", "s0"}, {"t/", ""},
	} {
		_, end, err := spanPolicy([]byte(tc.start))
		if err != nil || string(end) != tc.end {
			t.Errorf("spanPolicy(%q) ends at %q (%v), want %q", tc.start, end, err, tc.end)
		}
	}
}

// TestUsageLeavesOutBlobGarbage: values deleted and compacted out of the
// tables, but still inside a blob file that holds live values too, count in
// SizeBytes (they are on disk) and not in LiveBytes (a CompactAll would
// drop them).
func TestUsageLeavesOutBlobGarbage(t *testing.T) {
	opts := testOptions
	opts.manualCompactionsOnly = true
	e := openAt(t, filepath.Join(t.TempDir(), "db"), opts)
	const n, size = 2000, 2400
	rnd := rand.NewChaCha8([32]byte{2})
	value := make([]byte, size)
	b := e.NewBatch()
	for i := range n {
		_, _ = rnd.Read(value) // random: the blob file is as large as its values
		if err := b.Set(versionKey(fmt.Sprintf("key%04d", i), 1), value); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Flush(); err != nil {
		t.Fatal(err)
	}
	b = e.NewBatch()
	for i := range n {
		if i%4 != 0 {
			_ = b.Delete(versionKey(fmt.Sprintf("key%04d", i), 1))
		}
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	// A plain compaction: the tables lose the deleted keys, the blob
	// files keep their values.
	flushAndCompactKeys(t, e)
	u := e.Usage()
	values := int64(n * size)
	if u.SizeBytes < values || u.LiveBytes > values/2 {
		t.Fatalf("usage %+v with %d bytes of values written and three quarters deleted", u, values)
	}
}

// TestUsageCountsBlobFilesAfterReopen: the blob files a store holds when it
// is opened count in its usage (Pebble's own local-size metric leaves them
// out), and deleting them afterwards does not make the figure wrap.
func TestUsageCountsBlobFilesAfterReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	e := openAt(t, dir, testOptions)
	const n, size = 1000, 2400
	rnd := rand.NewChaCha8([32]byte{3})
	value := make([]byte, size)
	b := e.NewBatch()
	for i := range n {
		_, _ = rnd.Read(value)
		if err := b.Set(versionKey(fmt.Sprintf("key%04d", i), 1), value); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil { // flushes: the values go to blob files
		t.Fatal(err)
	}
	e = openAt(t, dir, testOptions)
	values := int64(n * size)
	if u := e.Usage(); u.SizeBytes < values || u.LiveBytes < values {
		t.Fatalf("usage after reopen %+v, want both >= the %d bytes of values", u, values)
	}
	b = e.NewBatch()
	if err := b.DeleteRange(versionKey("key", 1), versionKey("key9999", 1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := e.CompactAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	u := e.Usage()
	for ; u.SizeBytes > values/2 && time.Now().Before(deadline); u = e.Usage() {
		time.Sleep(20 * time.Millisecond) // Pebble deletes the files just after the compaction
	}
	if u.SizeBytes > values/2 || u.LiveBytes > values/2 {
		t.Fatalf("usage %+v after deleting every value (%d bytes) and compacting", u, values)
	}
}

// TestNoValueBlocks: tables hold older versions' values inline, not in
// value blocks, which the table writer would buffer in the heap until the
// table is finished (spanPolicy).
func TestNoValueBlocks(t *testing.T) {
	opts := testOptions
	opts.manualCompactionsOnly = true
	e := openAt(t, filepath.Join(t.TempDir(), "db"), opts)
	value := bytes.Repeat([]byte("v"), 100) // below valueSepMinSize: not a blob
	for rev := uint64(1); rev <= 5; rev++ {
		b := e.NewBatch()
		for i := range 500 {
			if err := b.Set(versionKey(fmt.Sprintf("key%04d", i), rev), value); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
	}
	flushAndCompactKeys(t, e)
	levels, err := e.db.SSTables(pebble.WithProperties())
	if err != nil {
		t.Fatal(err)
	}
	tables := 0
	for _, level := range levels {
		for _, tbl := range level {
			tables++
			if n := tbl.Properties.NumValuesInValueBlocks; n > 0 {
				t.Errorf("table %v holds %d values in value blocks", tbl.FileNum, n)
			}
		}
	}
	if tables == 0 {
		t.Fatal("no tables to look at")
	}
}
