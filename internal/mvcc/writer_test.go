package mvcc

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
	"github.com/metastore/metastore/internal/storage/pebble"
)

// writerEngines runs a test on both engines: the Writer's shared iterator
// and the once-per-batch metadata must behave alike on each.
func writerEngines(t *testing.T, fn func(t *testing.T, eng storage.Engine, reopen func() (storage.Engine, *Store))) {
	t.Run("memory", func(t *testing.T) {
		eng := memory.New()
		t.Cleanup(func() { _ = eng.Close() })
		fn(t, eng, nil)
	})
	t.Run("pebble", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "db")
		eng, err := pebble.Open(dir, pebble.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		cur := storage.Engine(eng)
		t.Cleanup(func() { _ = cur.Close() })
		fn(t, eng, func() (storage.Engine, *Store) {
			if err := cur.Close(); err != nil {
				t.Fatal(err)
			}
			e, err := pebble.Open(dir, pebble.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			cur = e
			return e, openStore(t, e)
		})
	})
}

// A batch of many txns stages the store's metadata once (Finish), and what
// it stages is what the last txn left: a reopened store resumes at the
// batch's revision and key count.
func TestWriterBatchOfTxnsPersistsMetadataOnce(t *testing.T) {
	writerEngines(t, func(t *testing.T, eng storage.Engine, reopen func() (storage.Engine, *Store)) {
		s := openStore(t, eng)
		put(t, s, "a", "0") // rev 2
		b := eng.NewBatch()
		defer b.Close()
		w := s.NewWriter(b)
		for i := 0; i < 10; i++ {
			tw := w.Begin()
			tw.Put([]byte(fmt.Sprintf("k%d", i)), []byte("v"), 0)
			tw.End()
		}
		tw := w.Begin()
		tw.DeleteRange([]byte("a"), nil)
		tw.End()
		tw = w.Begin()
		tw.End() // writes nothing: no revision
		before := b.Count()
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		if got := b.Count() - before; got != 3 {
			t.Fatalf("Finish staged %d records, want 3 (revision, key count, size)", got)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		w.Commit()
		if s.Rev() != 13 || s.KeyCount() != 10 {
			t.Fatalf("rev %d keys %d, want 13 10", s.Rev(), s.KeyCount())
		}
		if reopen == nil {
			return
		}
		size := s.LogicalSize()
		_ = s.Close()
		_, s2 := reopen()
		if s2.Rev() != 13 || s2.KeyCount() != 10 || s2.LogicalSize() != size {
			t.Fatalf("reopened: rev %d keys %d size %d, want 13 10 %d", s2.Rev(), s2.KeyCount(), s2.LogicalSize(), size)
		}
	})
}

func TestWriterCommitWithoutFinishPanics(t *testing.T) {
	s, eng := newStore(t)
	b := eng.NewBatch()
	defer b.Close()
	w := s.NewWriter(b)
	defer w.Close()
	tw := w.Begin()
	tw.Put([]byte("a"), []byte("1"), 0)
	tw.End()
	defer func() {
		if recover() == nil {
			t.Fatal("Commit without Finish did not panic")
		}
	}()
	w.Commit()
}

// The Writer's shared iterator is opened once per batch: the versions it
// reports must still follow every earlier batch and the Writer's own
// staged writes (put, delete, put again in one batch).
func TestWriterPutSeesEarlierBatchesAndOwnWrites(t *testing.T) {
	writerEngines(t, func(t *testing.T, eng storage.Engine, _ func() (storage.Engine, *Store)) {
		s := openStore(t, eng)
		put(t, s, "a", "0")     // 2: a v1
		put(t, s, "a", "1")     // 3: a v2
		put(t, s, "b", "0")     // 4
		del(t, s, "b", "")      // 5
		put(t, s, "a\x00", "z") // 6: a key with an escaped byte next to a
		b := eng.NewBatch()
		defer b.Close()
		w := s.NewWriter(b)
		defer w.Close()
		step := func(fn func(tw *TxnWrite)) {
			tw := w.Begin()
			fn(tw)
			tw.End()
		}
		var prev []string
		rec := func(tw *TxnWrite, k, v string) {
			p := tw.Put([]byte(k), []byte(v), 0)
			if p == nil {
				prev = append(prev, "nil")
				return
			}
			prev = append(prev, fmt.Sprintf("%s=%s(c%d,m%d,v%d)", p.Key, p.Value, p.CreateRevision, p.ModRevision, p.Version))
		}
		step(func(tw *TxnWrite) { rec(tw, "a", "2") })                    // 7: a v3
		step(func(tw *TxnWrite) { rec(tw, "b", "1") })                    // 8: b recreated
		step(func(tw *TxnWrite) { tw.DeleteRange([]byte("a"), nil) })     // 9
		step(func(tw *TxnWrite) { rec(tw, "a", "3"); rec(tw, "a", "4") }) // 10
		step(func(tw *TxnWrite) { rec(tw, "c", "0") })                    // 11
		// The value of a committed previous version is not at hand (only
		// its metadata); that of one staged by this Writer is.
		want := "[a=(c2,m3,v2) nil nil a=3(c10,m10,v1) nil]"
		if got := fmt.Sprint(prev); got != want {
			t.Fatalf("previous versions %s, want %s", got, want)
		}
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		w.Commit()
		got := kvString(rng(t, s, "a", "\x00", RangeOptions{}).KVs)
		if want := "a=4(c10,m10,v2,l0) a\x00=z(c6,m6,v1,l0) b=1(c8,m8,v1,l0) c=0(c11,m11,v1,l0) "; got != want {
			t.Fatalf("range %q, want %q", got, want)
		}
	})
}

// TxnWrite.Range answers single keys at the newest revision from the
// Writer's shared iterator; it must agree with the general range path.
func TestTxnWriteSingleKeyRangeMatchesScan(t *testing.T) {
	writerEngines(t, func(t *testing.T, eng storage.Engine, _ func() (storage.Engine, *Store)) {
		s := openStore(t, eng)
		put(t, s, "a", "0")
		put(t, s, "a", "1")
		put(t, s, "b", "0")
		del(t, s, "b", "")
		b := eng.NewBatch()
		defer b.Close()
		w := s.NewWriter(b)
		defer w.Close()
		tw := w.Begin()
		tw.Put([]byte("c"), []byte("staged"), 7)
		tw.DeleteRange([]byte("a"), nil)
		tw.End()
		tw = w.Begin()
		tw.Put([]byte("a"), []byte("again"), 0)
		opts := []RangeOptions{{}, {KeysOnly: true}, {Count: true}, {Limit: 1}, {Rev: tw.Rev()}}
		for _, k := range []string{"a", "b", "c", "d"} {
			for _, ro := range opts {
				fast, err := tw.Range(ctx, []byte(k), nil, ro)
				if err != nil {
					t.Fatal(err)
				}
				slow, err := tw.view().rangeKeys(ctx, []byte(k), nil, ro)
				if err != nil {
					t.Fatal(err)
				}
				f := fmt.Sprintf("%d %d %s", fast.Rev, fast.Count, kvString(fast.KVs))
				sl := fmt.Sprintf("%d %d %s", slow.Rev, slow.Count, kvString(slow.KVs))
				if f != sl {
					t.Fatalf("key %s %+v: point lookup %q, scan %q", k, ro, f, sl)
				}
			}
		}
		tw.End()
	})
}

// Point reads and puts on keys that live in flushed tables (after a
// reopen), where the pebble engine answers from per-key-prefix filters:
// every key, at every revision, must read as a model says, and puts must
// continue each key's versions.
func TestPointReadsAndPutsAfterFlush(t *testing.T) {
	writerEngines(t, func(t *testing.T, eng storage.Engine, reopen func() (storage.Engine, *Store)) {
		s := openStore(t, eng)
		type ver struct {
			val            string
			create, ver, m int64
		}
		model := map[int64]map[string]ver{} // revision -> live keys
		live := map[string]ver{}
		snap := func() {
			m := make(map[string]ver, len(live))
			for k, v := range live {
				m[k] = v
			}
			model[s.Rev()] = m
		}
		snap()
		key := func(i int) string { return fmt.Sprintf("k%03d\x00%d", i, i%3) }
		for round := 0; round < 3; round++ {
			for i := round; i < 60; i += 1 + round {
				k := key(i)
				v := fmt.Sprintf("v%d", round)
				put(t, s, k, v)
				old, ok := live[k]
				if ok {
					live[k] = ver{v, old.create, old.ver + 1, s.Rev()}
				} else {
					live[k] = ver{v, s.Rev(), 1, s.Rev()}
				}
				snap()
			}
			for i := round; i < 60; i += 7 {
				if _, ok := live[key(i)]; ok {
					del(t, s, key(i), "")
					delete(live, key(i))
					snap()
				}
			}
		}
		if reopen != nil {
			_ = s.Close()
			_, s = reopen()
		}
		for rev, m := range model {
			if rev < 2 {
				continue
			}
			for i := 0; i < 62; i++ {
				k := key(i)
				r := rng(t, s, k, "", RangeOptions{Rev: rev})
				want := ""
				if v, ok := m[k]; ok {
					want = fmt.Sprintf("%s=%s(c%d,m%d,v%d,l0) ", k, v.val, v.create, v.m, v.ver)
				}
				if got := kvString(r.KVs); got != want {
					t.Fatalf("rev %d key %q: %q, want %q", rev, k, got, want)
				}
			}
		}
		for i := 0; i < 62; i++ {
			k := key(i)
			put(t, s, k, "last")
			r := rng(t, s, k, "", RangeOptions{})
			old, ok := live[k]
			want := fmt.Sprintf("%s=last(c%d,m%d,v%d,l0) ", k, s.Rev(), s.Rev(), 1)
			if ok {
				want = fmt.Sprintf("%s=last(c%d,m%d,v%d,l0) ", k, old.create, s.Rev(), old.ver+1)
			}
			if got := kvString(r.KVs); got != want {
				t.Fatalf("put after flush, key %q: %q, want %q", k, got, want)
			}
		}
	})
}
