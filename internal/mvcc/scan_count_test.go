package mvcc

import (
	"bytes"
	"fmt"
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

// TestCountReadsNoLiveValue: on the Pebble engine, with values large enough
// to be kept in blob files, a count at every revision matches the live keys
// and reads the value of no live record (only tombstones are read: their
// one-byte record is where liveness is written); ranges that return
// values still return them intact.
func TestCountReadsNoLiveValue(t *testing.T) {
	pe, err := pebble.Open(t.TempDir(), pebble.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	eng := &valueCountingEngine{Engine: pe}
	t.Cleanup(func() { _ = eng.Close() })
	s := openStore(t, eng)
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
