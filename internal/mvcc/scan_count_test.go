package mvcc

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/pebble"
)

// TestRecordLengthTellsLiveness pins the property the count-only walk
// relies on (liveByLen): a tombstone's record is tombRecordLen bytes, every
// live record is longer, even with zero revisions and an empty value.
func TestRecordLengthTellsLiveness(t *testing.T) {
	if n := len(appendRecord(nil, &version{tomb: true})); n != tombRecordLen {
		t.Fatalf("tombstone record is %d bytes, want %d", n, tombRecordLen)
	}
	for _, v := range []version{{}, {create: 1, ver: 1}, {create: 1 << 40, ver: 3, lease: -1, value: []byte("x")}} {
		if n := len(appendRecord(nil, &v)); n <= tombRecordLen {
			t.Fatalf("live record %+v is %d bytes, not longer than a tombstone's", v, n)
		}
	}
}

// valueCountingEngine counts the Value calls made on its iterators; the
// iterators are the Pebble engine's own, so their ValueLen still reaches
// the count-only walk.
type valueCountingEngine struct {
	storage.Engine
	values atomic.Int64
}

func (e *valueCountingEngine) NewIter(o storage.IterOptions) (storage.Iterator, error) {
	it, err := e.Engine.NewIter(o)
	if err != nil {
		return nil, err
	}
	return &valueCountingIter{Iterator: it, n: &e.values}, nil
}

// NewSnapshot counts on the snapshot's iterators too: the compaction scans
// a snapshot.
func (e *valueCountingEngine) NewSnapshot() storage.Snapshot {
	return &valueCountingSnapshot{Snapshot: e.Engine.NewSnapshot(), n: &e.values}
}

type valueCountingSnapshot struct {
	storage.Snapshot
	n *atomic.Int64
}

func (s *valueCountingSnapshot) NewIter(o storage.IterOptions) (storage.Iterator, error) {
	it, err := s.Snapshot.NewIter(o)
	if err != nil {
		return nil, err
	}
	return &valueCountingIter{Iterator: it, n: s.n}, nil
}

type valueCountingIter struct {
	storage.Iterator
	n *atomic.Int64
}

func (i *valueCountingIter) Value() []byte {
	i.n.Add(1)
	return i.Iterator.Value()
}

func (i *valueCountingIter) ValueLen() int {
	return i.Iterator.(valueLener).ValueLen()
}

// countingPebbleStore opens a store on a Pebble engine whose Value calls
// are counted.
func countingPebbleStore(t *testing.T) (*pebble.Engine, *valueCountingEngine, *Store) {
	pe, err := pebble.Open(t.TempDir(), pebble.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	eng := &valueCountingEngine{Engine: pe}
	t.Cleanup(func() { _ = eng.Close() })
	return pe, eng, openStore(t, eng)
}

// TestCountReadsNoLiveValue: on the Pebble engine, with values large enough
// to be kept in blob files, a count at every revision matches the live keys
// and reads the value of no live record (only tombstones are read: their
// one-byte record is where liveness is written); ranges that return
// values still return them intact.
func TestCountReadsNoLiveValue(t *testing.T) {
	pe, eng, s := countingPebbleStore(t)
	const keys = 60
	val := func(i, round int) []byte {
		return bytes.Repeat([]byte{byte('a' + i%26), byte(round)}, 1500) // 3000 bytes: separated
	}
	key := func(i int) []byte { return []byte(fmt.Sprintf("/registry/pods/p%03d", i)) }
	live := map[int64]int{}
	n := 0
	for i := range keys {
		apply(t, s, func(tw *TxnWrite) { tw.Put(key(i), val(i, 0), 0) })
		n++
		live[s.Rev()] = n
	}
	for i := 0; i < keys; i += 3 {
		apply(t, s, func(tw *TxnWrite) { tw.DeleteRange(key(i), nil) })
		n--
		live[s.Rev()] = n
	}
	for i := 1; i < keys; i += 3 {
		apply(t, s, func(tw *TxnWrite) { tw.Put(key(i), val(i, 1), 0) })
		live[s.Rev()] = n
	}
	// Move everything into tables (and the large values into blob files).
	if err := pe.CompactAll(ctx); err != nil {
		t.Fatal(err)
	}
	lo, hi := []byte("/registry/pods/"), []byte("/registry/pods0")
	for rev, want := range live {
		before := eng.values.Load()
		res, err := s.Range(ctx, lo, hi, RangeOptions{Rev: rev, Count: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Count != want {
			t.Fatalf("count at %d = %d, want %d", rev, res.Count, want)
		}
		if read, tombs := eng.values.Load()-before, int64(keys-want); read > tombs {
			t.Fatalf("count at %d read %d values, want at most the %d tombstones", rev, read, tombs)
		}
	}
	res, err := s.Range(ctx, lo, hi, RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.KVs) != n {
		t.Fatalf("range returned %d keys, want %d", len(res.KVs), n)
	}
	for _, kv := range res.KVs {
		var i int
		if _, err := fmt.Sscanf(string(kv.Key), "/registry/pods/p%03d", &i); err != nil {
			t.Fatal(err)
		}
		want := val(i, 0)
		if i%3 == 1 {
			want = val(i, 1)
		}
		if !bytes.Equal(kv.Value, want) {
			t.Fatalf("value of %s differs (%d bytes)", kv.Key, len(kv.Value))
		}
	}
}

// TestCompactReadsNoLiveValue: on the Pebble engine, with values kept in
// blob files, a compaction's removal pass decides what to remove from the
// records' lengths: beyond its hash it reads no value of a live record
// (only tombstones' one-byte records), and removes exactly what it must.
func TestCompactReadsNoLiveValue(t *testing.T) {
	pe, eng, s := countingPebbleStore(t)
	const keys = 30
	val := func(i, round int) []byte { return bytes.Repeat([]byte{byte('a' + i%26), byte(round)}, 1500) }
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%02d", i)) }
	for round := range 3 {
		for i := range keys {
			apply(t, s, func(tw *TxnWrite) { tw.Put(key(i), val(i, round), 0) })
		}
	}
	tombs := 0
	for i := 0; i < keys; i += 5 {
		apply(t, s, func(tw *TxnWrite) { tw.DeleteRange(key(i), nil) })
		tombs++
	}
	if err := pe.CompactAll(ctx); err != nil { // values into blob files
		t.Fatal(err)
	}
	// The compaction hashes every version up to its revision as it goes
	// (etcd's HashKV at compaction, which reads values); beyond what the
	// hash reads, it must read only the tombstones.
	before := eng.values.Load()
	if _, err := s.hashOver(context.Background(), eng, 0, s.Rev()); err != nil {
		t.Fatal(err)
	}
	hashReads := eng.values.Load() - before
	// Each version's value is read once to be hashed, a tombstone's once
	// more for its flag.
	if most := int64(3*keys + 2*tombs); hashReads > most {
		t.Fatalf("the hash read %d values, want at most %d (one per version, two per tombstone)", hashReads, most)
	}
	before = eng.values.Load()
	waitDone(t, compact(t, s, s.Rev()))
	if read := eng.values.Load() - before - hashReads; read > int64(tombs) {
		t.Fatalf("compaction read %d values beyond its hash's %d, want at most the %d tombstones", read, hashReads, tombs)
	}
	// Revision 1 is the empty store's; the last delete (of k25) is at the
	// compaction revision itself, so its tombstone stays, as in etcd.
	var want strings.Builder
	for i := range keys {
		switch {
		case i == keys-5:
			fmt.Fprintf(&want, "%s@%dt ", key(i), s.Rev())
		case i%5 != 0:
			fmt.Fprintf(&want, "%s@%d ", key(i), 2*keys+i+2)
		}
	}
	if got := versions(t, eng); got != want.String() {
		t.Fatalf("after compaction:\n%s\nwant\n%s", got, want.String())
	}
	res, err := s.Range(ctx, []byte("k"), []byte("l"), RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range res.KVs {
		var i int
		if _, err := fmt.Sscanf(string(kv.Key), "k%02d", &i); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(kv.Value, val(i, 2)) {
			t.Fatalf("value of %s differs after compaction", kv.Key)
		}
	}
}
