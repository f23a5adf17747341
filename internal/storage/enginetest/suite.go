package enginetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/metastore/metastore/internal/storage"
)

// Suite describes the engine under test.
type Suite struct {
	// Open returns a new, empty engine. It should register a t.Cleanup that
	// closes the engine and ignores storage.ErrClosed (the suite closes some
	// engines itself).
	Open func(t *testing.T) storage.Engine
	// OpenCheckpoint opens the checkpoint the engine wrote into dir, with
	// the same cleanup duty as Open. If nil, checkpoints are only checked to
	// be written.
	OpenCheckpoint func(t *testing.T, dir string) storage.Engine
}

// Run runs the conformance suite with no checkpoint reopening.
func Run(t *testing.T, open func(t *testing.T) storage.Engine) {
	RunSuite(t, Suite{Open: open})
}

// RunSuite runs the conformance suite.
func RunSuite(t *testing.T, s Suite) {
	tests := []struct {
		name string
		fn   func(*testing.T, Suite)
	}{
		{"GetNotFound", testGetNotFound},
		{"GetReturnsCopy", testGetReturnsCopy},
		{"BatchAtomicity", testBatchAtomicity},
		{"BatchOpOrder", testBatchOpOrder},
		{"BatchAfterCommitOrClose", testBatchAfterCommitOrClose},
		{"EmptyBatchAndSync", testEmptyBatchAndSync},
		{"CallerReusesSlices", testCallerReusesSlices},
		{"IterBounds", testIterBounds},
		{"IterEmptyRanges", testIterEmptyRanges},
		{"IterDirectionChanges", testIterDirectionChanges},
		{"IterLongScan", testIterLongScan},
		{"IterAgainstModel", testIterAgainstModel},
		{"IterIsolation", testIterIsolation},
		{"SnapshotIsolation", testSnapshotIsolation},
		{"Checkpoint", testCheckpoint},
		{"Usage", testUsage},
		{"BinaryKeys", testBinaryKeys},
		{"LargeValues", testLargeValues},
		{"ConcurrentReadersAndWriter", testConcurrent},
		{"CompactAll", testCompactAll},
		{"Ingest", testIngest},
		{"AfterClose", testAfterClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, s) })
	}
}

// kv is one expected key/value pair.
type kv struct{ k, v string }

func commit(t *testing.T, e storage.Engine, sync bool, ops func(b storage.Batch)) {
	t.Helper()
	b := e.NewBatch()
	defer b.Close()
	ops(b)
	if err := b.Commit(sync); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func set(t *testing.T, b storage.Batch, k, v string) {
	t.Helper()
	if err := b.Set([]byte(k), []byte(v)); err != nil {
		t.Fatalf("set %q: %v", k, err)
	}
}

func del(t *testing.T, b storage.Batch, k string) {
	t.Helper()
	if err := b.Delete([]byte(k)); err != nil {
		t.Fatalf("delete %q: %v", k, err)
	}
}

func delRange(t *testing.T, b storage.Batch, start, end string) {
	t.Helper()
	if err := b.DeleteRange([]byte(start), []byte(end)); err != nil {
		t.Fatalf("delete range [%q, %q): %v", start, end, err)
	}
}

func put(t *testing.T, e storage.Engine, pairs ...kv) {
	t.Helper()
	commit(t, e, false, func(b storage.Batch) {
		for _, p := range pairs {
			set(t, b, p.k, p.v)
		}
	})
}

func mustGet(t *testing.T, r storage.Reader, k, want string) {
	t.Helper()
	got, err := r.Get([]byte(k))
	if err != nil {
		t.Fatalf("get %q: %v (want %q)", k, err, want)
	}
	if string(got) != want {
		t.Fatalf("get %q = %q, want %q", k, got, want)
	}
}

func mustMiss(t *testing.T, r storage.Reader, k string) {
	t.Helper()
	got, err := r.Get([]byte(k))
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get %q = %q, %v; want ErrNotFound", k, got, err)
	}
}

func newIter(t *testing.T, r storage.Reader, lower, upper []byte) storage.Iterator {
	t.Helper()
	it, err := r.NewIter(storage.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		t.Fatalf("new iter: %v", err)
	}
	t.Cleanup(func() { _ = it.Close() })
	return it
}

// scan returns every pair of r within bounds, walking forward, and checks
// that walking backward gives the same pairs reversed.
func scan(t *testing.T, r storage.Reader, lower, upper []byte) []kv {
	t.Helper()
	it := newIter(t, r, lower, upper)
	defer it.Close()
	var fwd, bwd []kv
	for ok := it.First(); ok; ok = it.Next() {
		fwd = append(fwd, kv{string(it.Key()), string(it.Value())})
	}
	for ok := it.Last(); ok; ok = it.Prev() {
		bwd = append(bwd, kv{string(it.Key()), string(it.Value())})
	}
	if err := it.Error(); err != nil {
		t.Fatalf("iterator error: %v", err)
	}
	slices.Reverse(bwd)
	if !slices.Equal(fwd, bwd) {
		t.Fatalf("forward scan %q != backward scan %q", fwd, bwd)
	}
	return fwd
}

func wantScan(t *testing.T, r storage.Reader, lower, upper []byte, want ...kv) {
	t.Helper()
	got := scan(t, r, lower, upper)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Fatalf("scan [%q, %q) = %q, want %q", lower, upper, got, want)
	}
}

// at checks the iterator's position: valid at key k, or invalid if k is "".
func at(t *testing.T, it storage.Iterator, ok bool, k string) {
	t.Helper()
	if ok != it.Valid() {
		t.Fatalf("positioning returned %v but Valid() = %v", ok, it.Valid())
	}
	if k == "" {
		if ok {
			t.Fatalf("iterator at %q, want exhausted", it.Key())
		}
		return
	}
	if !ok {
		t.Fatalf("iterator exhausted, want at %q (err %v)", k, it.Error())
	}
	if string(it.Key()) != k {
		t.Fatalf("iterator at %q, want %q", it.Key(), k)
	}
}

func testGetNotFound(t *testing.T, s Suite) {
	e := s.Open(t)
	mustMiss(t, e, "missing")
	mustMiss(t, e, "")
	put(t, e, kv{"a", "1"})
	mustMiss(t, e, "b")
	mustMiss(t, e, "a\x00")
	mustGet(t, e, "a", "1")
	wantScan(t, e, nil, nil, kv{"a", "1"})
}

func testGetReturnsCopy(t *testing.T, s Suite) {
	e := s.Open(t)
	put(t, e, kv{"a", "value"})
	v, err := e.Get([]byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	copy(v, "XXXXX")
	mustGet(t, e, "a", "value")
	// An empty value is a value, not a missing key.
	put(t, e, kv{"empty", ""})
	v, err = e.Get([]byte("empty"))
	if err != nil || len(v) != 0 {
		t.Fatalf("get empty value = %q, %v", v, err)
	}
}

func testBatchAtomicity(t *testing.T, s Suite) {
	e := s.Open(t)
	b := e.NewBatch()
	set(t, b, "a", "1")
	set(t, b, "b", "2")
	del(t, b, "c")
	if b.Count() != 3 {
		t.Fatalf("count = %d, want 3", b.Count())
	}
	mustMiss(t, e, "a")
	wantScan(t, e, nil, nil)
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	mustGet(t, e, "a", "1")
	mustGet(t, e, "b", "2")

	// A batch closed without commit leaves no trace.
	b = e.NewBatch()
	set(t, b, "x", "1")
	delRange(t, b, "a", "z")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, e, "x")
	wantScan(t, e, nil, nil, kv{"a", "1"}, kv{"b", "2"})

	// Batches never share state.
	b1, b2 := e.NewBatch(), e.NewBatch()
	set(t, b1, "p", "1")
	set(t, b2, "q", "2")
	if err := b2.Commit(false); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, e, "p")
	_ = b1.Close()
	_ = b2.Close()
	mustMiss(t, e, "p")
	mustGet(t, e, "q", "2")
}

func testBatchOpOrder(t *testing.T, s Suite) {
	e := s.Open(t)
	put(t, e, kv{"c", "old"}, kv{"r1", "x"}, kv{"r2", "x"}, kv{"r3", "x"}, kv{"s", "x"})
	commit(t, e, true, func(b storage.Batch) {
		set(t, b, "a", "1")
		set(t, b, "a", "2") // last write wins
		set(t, b, "b", "1")
		del(t, b, "b") // delete after set
		del(t, b, "c")
		set(t, b, "c", "new") // set after delete
		set(t, b, "d", "1")
		set(t, b, "e", "1")
		set(t, b, "f", "1")
		delRange(t, b, "d", "f") // hits d and e, end exclusive
		delRange(t, b, "r", "s") // hits keys committed earlier
		set(t, b, "r2", "back")  // set inside a range deleted earlier in the batch
		delRange(t, b, "z", "a") // inverted: no-op
		delRange(t, b, "q", "q") // empty: no-op
	})
	wantScan(t, e, nil, nil,
		kv{"a", "2"}, kv{"c", "new"}, kv{"f", "1"}, kv{"r2", "back"}, kv{"s", "x"})

	// Deleting what does not exist is fine; so is a range with no keys.
	commit(t, e, false, func(b storage.Batch) {
		del(t, b, "nope")
		delRange(t, b, "g", "h")
	})
	// A range deletion over everything.
	commit(t, e, false, func(b storage.Batch) {
		delRange(t, b, "", "\xff\xff")
		set(t, b, "z", "1")
	})
	wantScan(t, e, nil, nil, kv{"z", "1"})
}

func testBatchAfterCommitOrClose(t *testing.T, s Suite) {
	e := s.Open(t)
	b := e.NewBatch()
	set(t, b, "a", "1")
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	// Reusing a committed batch is a bug the engine reports rather than
	// silently re-applying or dropping writes.
	if err := b.Commit(false); err == nil {
		t.Fatal("second commit of a batch succeeded")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("second batch close: %v", err)
	}
	if err := b.Set([]byte("b"), nil); err == nil {
		t.Fatal("set on a closed batch succeeded")
	}
	if err := b.Commit(false); err == nil {
		t.Fatal("commit of a closed batch succeeded")
	}
	mustMiss(t, e, "b")
	mustGet(t, e, "a", "1")
}

func testEmptyBatchAndSync(t *testing.T, s Suite) {
	e := s.Open(t)
	put(t, e, kv{"a", "1"})
	for _, sync := range []bool{false, true} {
		b := e.NewBatch()
		if b.Count() != 0 {
			t.Fatalf("new batch count = %d", b.Count())
		}
		if err := b.Commit(sync); err != nil {
			t.Fatalf("empty commit (sync=%v): %v", sync, err)
		}
		_ = b.Close()
	}
	if err := e.Sync(); err != nil {
		t.Fatalf("sync: %v", err)
	}
	mustGet(t, e, "a", "1")
}

func testCallerReusesSlices(t *testing.T, s Suite) {
	e := s.Open(t)
	b := e.NewBatch()
	defer b.Close()
	k := []byte("key-1")
	v := []byte("val-1")
	if err := b.Set(k, v); err != nil {
		t.Fatal(err)
	}
	copy(k, "key-2")
	copy(v, "val-2")
	if err := b.Set(k, v); err != nil {
		t.Fatal(err)
	}
	copy(k, "key-3")
	if err := b.Delete(k); err != nil {
		t.Fatal(err)
	}
	start, end := []byte("key-3"), []byte("key-4")
	if err := b.DeleteRange(start, end); err != nil {
		t.Fatal(err)
	}
	copy(start, "key-0")
	copy(end, "key-9")
	copy(k, "XXXXX")
	copy(v, "XXXXX")
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	wantScan(t, e, nil, nil, kv{"key-1", "val-1"}, kv{"key-2", "val-2"})

	// Iterator bounds are copied too.
	lower, upper := []byte("key-1"), []byte("key-2")
	it := newIter(t, e, lower, upper)
	copy(lower, "key-0")
	copy(upper, "key-9")
	at(t, it, it.First(), "key-1")
	at(t, it, it.Next(), "")
}

func testIterBounds(t *testing.T, s Suite) {
	e := s.Open(t)
	put(t, e, kv{"a", "1"}, kv{"b", "2"}, kv{"c", "3"}, kv{"d", "4"}, kv{"e", "5"})

	it := newIter(t, e, nil, nil)
	at(t, it, it.First(), "a")
	at(t, it, it.Last(), "e")
	at(t, it, it.SeekGE([]byte("")), "a")
	at(t, it, it.SeekGE([]byte("bb")), "c")
	at(t, it, it.SeekGE([]byte("e")), "e")
	at(t, it, it.SeekGE([]byte("e\x00")), "")
	at(t, it, it.SeekLT([]byte("a")), "")
	at(t, it, it.SeekLT([]byte("a\x00")), "a")
	at(t, it, it.SeekLT([]byte("c")), "b")
	at(t, it, it.SeekLT([]byte("\xff")), "e")
	if string(it.Value()) != "5" {
		t.Fatalf("value at e = %q", it.Value())
	}

	// [b, d)
	it = newIter(t, e, []byte("b"), []byte("d"))
	at(t, it, it.First(), "b")
	at(t, it, it.Prev(), "")
	at(t, it, it.Last(), "c")
	at(t, it, it.Next(), "")
	at(t, it, it.SeekGE([]byte("a")), "b") // below the lower bound: clamped
	at(t, it, it.SeekGE([]byte("b")), "b")
	at(t, it, it.SeekGE([]byte("bb")), "c")
	at(t, it, it.SeekGE([]byte("c")), "c")
	at(t, it, it.SeekGE([]byte("d")), "") // the upper bound is exclusive
	at(t, it, it.SeekGE([]byte("z")), "")
	at(t, it, it.SeekLT([]byte("z")), "c") // above the upper bound: clamped
	at(t, it, it.SeekLT([]byte("d")), "c")
	at(t, it, it.SeekLT([]byte("c")), "b")
	at(t, it, it.SeekLT([]byte("b")), "")
	at(t, it, it.SeekLT([]byte("a")), "")
	if it.Key() != nil || it.Value() != nil {
		// Not required to be nil by the interface, but must not panic.
		_ = it.Key()
	}

	// Only a lower bound, only an upper bound.
	wantScan(t, e, []byte("d"), nil, kv{"d", "4"}, kv{"e", "5"})
	wantScan(t, e, nil, []byte("b"), kv{"a", "1"})
	wantScan(t, e, []byte("c\x00"), []byte("e"), kv{"d", "4"})
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
}

func testIterEmptyRanges(t *testing.T, s Suite) {
	e := s.Open(t)
	it := newIter(t, e, nil, nil) // empty engine
	at(t, it, it.First(), "")
	at(t, it, it.Last(), "")
	at(t, it, it.SeekGE([]byte("a")), "")
	at(t, it, it.SeekLT([]byte("a")), "")
	at(t, it, it.Next(), "")
	at(t, it, it.Prev(), "")

	put(t, e, kv{"a", "1"}, kv{"c", "3"})
	for _, r := range [][2]string{{"b", "c"}, {"b", "b"}, {"a\x00", "b"}, {"d", "z"}, {"", "a"}, {"c", "a"}, {"z", "a"}} {
		it := newIter(t, e, []byte(r[0]), []byte(r[1]))
		at(t, it, it.First(), "")
		at(t, it, it.Last(), "")
		at(t, it, it.SeekGE([]byte(r[0])), "")
		at(t, it, it.SeekLT([]byte(r[1])), "")
	}
}

func testIterDirectionChanges(t *testing.T, s Suite) {
	e := s.Open(t)
	put(t, e, kv{"a", "1"}, kv{"b", "2"}, kv{"c", "3"})
	it := newIter(t, e, nil, nil)
	at(t, it, it.SeekGE([]byte("b")), "b")
	at(t, it, it.Prev(), "a")
	at(t, it, it.Next(), "b")
	at(t, it, it.Next(), "c")
	at(t, it, it.Prev(), "b")
	at(t, it, it.Next(), "c")
	at(t, it, it.Next(), "")
	// Stepping back from past the end lands on the last key, and forward
	// from before the start on the first (Pebble's semantics).
	at(t, it, it.Prev(), "c")
	at(t, it, it.First(), "a")
	at(t, it, it.Prev(), "")
	at(t, it, it.Next(), "a")
	at(t, it, it.SeekGE([]byte("d")), "")
	at(t, it, it.Prev(), "c")
	at(t, it, it.SeekLT([]byte("a")), "")
	at(t, it, it.Next(), "a")
}

// testIterLongScan crosses any internal buffering of the iterator many
// times in both directions.
func testIterLongScan(t *testing.T, s Suite) {
	e := s.Open(t)
	const n = 1000
	commit(t, e, false, func(b storage.Batch) {
		for i := range n {
			set(t, b, fmt.Sprintf("k%05d", i), fmt.Sprint(i))
		}
	})
	got := scan(t, e, nil, nil)
	if len(got) != n {
		t.Fatalf("scan found %d keys, want %d", len(got), n)
	}
	for i, p := range got {
		if p.k != fmt.Sprintf("k%05d", i) || p.v != fmt.Sprint(i) {
			t.Fatalf("scan[%d] = %q", i, p)
		}
	}
	// Zig-zag: forward 3, back 2, across the whole range.
	it := newIter(t, e, []byte("k00100"), []byte("k00900"))
	at(t, it, it.First(), "k00100")
	pos := 100
	for step := 0; pos < 899; step++ {
		move, d := it.Next, 1
		if step%5 >= 3 {
			move, d = it.Prev, -1
		}
		pos += d
		at(t, it, move(), fmt.Sprintf("k%05d", pos))
	}
	at(t, it, it.Next(), "")
	at(t, it, it.Prev(), "k00899")
}

// testIterAgainstModel compares random iterator moves over random batches
// with a sorted-slice model.
func testIterAgainstModel(t *testing.T, s Suite) {
	e := s.Open(t)
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{0x00, 0x01, 'a', 0xfe, 0xff}
	randKey := func() string {
		k := make([]byte, 1+rng.IntN(3)) // never empty: see storage.Engine
		for i := range k {
			k[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(k)
	}
	model := map[string]string{}
	for round := range 150 {
		commit(t, e, false, func(b storage.Batch) {
			for range 1 + rng.IntN(6) {
				switch k := randKey(); rng.IntN(10) {
				case 0, 1:
					del(t, b, k)
					delete(model, k)
				case 2:
					end := randKey()
					delRange(t, b, k, end)
					for mk := range model {
						if mk >= k && mk < end {
							delete(model, mk)
						}
					}
				default:
					v := fmt.Sprintf("v%d", rng.IntN(1000))
					set(t, b, k, v)
					model[k] = v
				}
			}
		})

		var lower, upper []byte
		if rng.IntN(3) > 0 {
			lower = []byte(randKey())
		}
		if rng.IntN(3) > 0 {
			upper = []byte(randKey())
		}
		var keys []string
		for k := range model {
			if (lower == nil || k >= string(lower)) && (upper == nil || k < string(upper)) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		m := &modelIter{keys: keys}
		it := newIter(t, e, lower, upper)
		var trace []string
		for range 40 {
			var ok, want bool
			switch op := rng.IntN(6); op {
			case 0:
				trace = append(trace, "First")
				ok, want = it.First(), m.first()
			case 1:
				trace = append(trace, "Last")
				ok, want = it.Last(), m.last()
			case 2:
				k := randKey()
				trace = append(trace, fmt.Sprintf("SeekGE(%q)", k))
				ok, want = it.SeekGE([]byte(k)), m.seekGE(k)
			case 3:
				k := randKey()
				trace = append(trace, fmt.Sprintf("SeekLT(%q)", k))
				ok, want = it.SeekLT([]byte(k)), m.seekLT(k)
			case 4:
				if !m.positioned {
					continue // unpositioned moves are not part of the contract
				}
				trace = append(trace, "Next")
				ok, want = it.Next(), m.next()
			case 5:
				if !m.positioned {
					continue
				}
				trace = append(trace, "Prev")
				ok, want = it.Prev(), m.prev()
			}
			if ok != want || ok != it.Valid() {
				t.Fatalf("round %d bounds [%q, %q) keys %q: after %q: got valid=%v (Valid()=%v), want %v",
					round, lower, upper, keys, trace, ok, it.Valid(), want)
			}
			if ok && (string(it.Key()) != m.key() || string(it.Value()) != model[m.key()]) {
				t.Fatalf("round %d bounds [%q, %q) keys %q: after %q: at %q=%q, want %q=%q",
					round, lower, upper, keys, trace, it.Key(), it.Value(), m.key(), model[m.key()])
			}
		}
		if err := it.Error(); err != nil {
			t.Fatal(err)
		}
		_ = it.Close()
	}
}

// modelIter positions in keys; pos is -1 or len(keys) when exhausted
// backward or forward, from which Next and Prev come back as Pebble's do.
type modelIter struct {
	keys       []string
	pos        int
	positioned bool
}

func (m *modelIter) valid() bool { return m.positioned && m.pos >= 0 && m.pos < len(m.keys) }
func (m *modelIter) key() string { return m.keys[m.pos] }
func (m *modelIter) to(pos int) bool {
	m.pos, m.positioned = max(-1, min(pos, len(m.keys))), true
	return m.valid()
}
func (m *modelIter) first() bool { return m.to(0) }
func (m *modelIter) last() bool  { return m.to(len(m.keys) - 1) }
func (m *modelIter) next() bool  { return m.to(m.pos + 1) }
func (m *modelIter) prev() bool  { return m.to(m.pos - 1) }

func (m *modelIter) seekGE(k string) bool {
	i, _ := slices.BinarySearch(m.keys, k)
	return m.to(i)
}

func (m *modelIter) seekLT(k string) bool {
	i, _ := slices.BinarySearch(m.keys, k)
	return m.to(i - 1)
}

func testIterIsolation(t *testing.T, s Suite) {
	e := s.Open(t)
	put(t, e, kv{"a", "1"}, kv{"b", "2"}, kv{"c", "3"})
	it := newIter(t, e, nil, nil)
	commit(t, e, true, func(b storage.Batch) {
		set(t, b, "a", "changed")
		del(t, b, "b")
		set(t, b, "bb", "new")
		delRange(t, b, "c", "d")
		set(t, b, "d", "new")
	})
	var got []kv
	for ok := it.First(); ok; ok = it.Next() {
		got = append(got, kv{string(it.Key()), string(it.Value())})
	}
	if want := []kv{{"a", "1"}, {"b", "2"}, {"c", "3"}}; !slices.Equal(got, want) {
		t.Fatalf("iterator created before the write saw %q, want %q", got, want)
	}
	at(t, it, it.SeekGE([]byte("bb")), "c")
	wantScan(t, e, nil, nil, kv{"a", "changed"}, kv{"bb", "new"}, kv{"d", "new"})
}

func testSnapshotIsolation(t *testing.T, s Suite) {
	e := s.Open(t)
	put(t, e, kv{"a", "1"}, kv{"b", "2"})
	snap := e.NewSnapshot()
	defer snap.Close()
	commit(t, e, true, func(b storage.Batch) {
		del(t, b, "a")
		set(t, b, "b", "changed")
		set(t, b, "c", "new")
	})
	// Later snapshot, later writes again.
	snap2 := e.NewSnapshot()
	defer snap2.Close()
	commit(t, e, false, func(b storage.Batch) { delRange(t, b, "", "z") })

	mustGet(t, snap, "a", "1")
	mustGet(t, snap, "b", "2")
	mustMiss(t, snap, "c")
	wantScan(t, snap, nil, nil, kv{"a", "1"}, kv{"b", "2"})
	mustMiss(t, snap2, "a")
	wantScan(t, snap2, nil, nil, kv{"b", "changed"}, kv{"c", "new"})
	wantScan(t, e, nil, nil)

	// An iterator made from a snapshot keeps the snapshot's view.
	it := newIter(t, snap, []byte("b"), nil)
	at(t, it, it.First(), "b")
	if string(it.Value()) != "2" {
		t.Fatalf("snapshot iterator value = %q", it.Value())
	}
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := snap.Get([]byte("a")); err == nil {
		t.Fatal("get on a closed snapshot succeeded")
	}
	if _, err := snap.NewIter(storage.IterOptions{}); err == nil {
		t.Fatal("new iterator on a closed snapshot succeeded")
	}
}

func testCheckpoint(t *testing.T, s Suite) {
	e := s.Open(t)
	want := []kv{{"a", "1"}, {"b\x00\xff", "2"}, {"c", string(bytes.Repeat([]byte{0xff}, 1000))}}
	put(t, e, want...)
	commit(t, e, false, func(b storage.Batch) {
		set(t, b, "deleted", "x")
		del(t, b, "deleted")
	})
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := e.Checkpoint(dir); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if err := e.Checkpoint(dir); err == nil {
		t.Fatal("checkpoint into an existing dir succeeded")
	}
	// Writes after the checkpoint are not in it.
	put(t, e, kv{"a", "after"}, kv{"z", "after"})
	if s.OpenCheckpoint == nil {
		return
	}
	c := s.OpenCheckpoint(t, dir)
	wantScan(t, c, nil, nil, want...)
	mustMiss(t, c, "deleted")
	// The copy is independent and writable.
	put(t, c, kv{"only-in-copy", "1"})
	mustMiss(t, e, "only-in-copy")
	mustGet(t, e, "a", "after")
}

func testUsage(t *testing.T, s Suite) {
	e := s.Open(t)
	u0 := e.Usage()
	if u0.SizeBytes < 0 || u0.LiveBytes < 0 {
		t.Fatalf("usage of an empty engine = %+v", u0)
	}
	value := bytes.Repeat([]byte("v"), 1024)
	for i := range 4 {
		commit(t, e, true, func(b storage.Batch) {
			for j := range 250 {
				if err := b.Set(fmt.Appendf(nil, "key-%d-%d", i, j), value); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	u1 := e.Usage()
	if u1.SizeBytes <= u0.SizeBytes || u1.LiveBytes <= u0.LiveBytes {
		t.Fatalf("usage did not grow after writing 1 MB: before %+v, after %+v", u0, u1)
	}
	if u1.LiveBytes > u1.SizeBytes {
		t.Fatalf("live bytes exceed size: %+v", u1)
	}
	if u1.SizeBytes < 1_000_000 {
		t.Fatalf("usage %+v after writing over 1 MB", u1)
	}
}

// testCompactAll: compacting an empty engine, one with a single key and
// one with overwritten, deleted and range-deleted keys changes no
// visible data, and an open snapshot keeps its view across it.
func testCompactAll(t *testing.T, s Suite) {
	ctx := context.Background()
	e := s.Open(t)
	if err := e.CompactAll(ctx); err != nil {
		t.Fatalf("compact an empty engine: %v", err)
	}
	put(t, e, kv{"only", "1"})
	if err := e.CompactAll(ctx); err != nil {
		t.Fatalf("compact one key: %v", err)
	}
	mustGet(t, e, "only", "1")
	value := bytes.Repeat([]byte("v"), 512)
	for round := range 3 {
		commit(t, e, false, func(b storage.Batch) {
			for i := range 200 {
				if err := b.Set(fmt.Appendf(nil, "k/%03d", i), append(value, byte(round))); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	snap := e.NewSnapshot()
	defer func() { _ = snap.Close() }()
	commit(t, e, true, func(b storage.Batch) {
		del(t, b, "only")
		delRange(t, b, "k/100", "k/200")
	})
	if err := e.CompactAll(ctx); err != nil {
		t.Fatalf("compact: %v", err)
	}
	mustMiss(t, e, "only")
	got := scan(t, e, nil, nil)
	if len(got) != 100 || got[0].k != "k/000" || got[99].k != "k/099" || got[42].v != string(append(value, 2)) {
		t.Fatalf("after compaction: %d keys, first %q", len(got), got[0].k)
	}
	mustGet(t, snap, "only", "1")
	if n := len(scan(t, snap, nil, nil)); n != 201 {
		t.Fatalf("snapshot sees %d keys after compaction, want 201", n)
	}
}

func testBinaryKeys(t *testing.T, s Suite) {
	e := s.Open(t)
	// No empty key: see storage.Engine.
	keys := []string{"\x00", "\x00\x00", "\x00\xff", "\x01", "a", "a\x00", "a\xff", "\xff", "\xff\x00", "\xff\xff", "\xff\xff\xff"}
	shuffled := slices.Clone(keys)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(shuffled), func(i, j int) {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	})
	commit(t, e, false, func(b storage.Batch) {
		for _, k := range shuffled {
			set(t, b, k, "v"+k)
		}
	})
	var want []kv
	for _, k := range keys {
		want = append(want, kv{k, "v" + k})
		mustGet(t, e, k, "v"+k)
	}
	wantScan(t, e, nil, nil, want...)
	// A prefix scan with storage.PrefixEnd, including the all-0xff prefix
	// whose end is unbounded.
	wantScan(t, e, []byte("\xff"), storage.PrefixEnd([]byte("\xff")), want[7:]...)
	wantScan(t, e, []byte("\x00"), storage.PrefixEnd([]byte("\x00")), want[0:3]...)
	wantScan(t, e, []byte("a"), storage.PrefixEnd([]byte("a")), want[4:7]...)
	commit(t, e, false, func(b storage.Batch) {
		delRange(t, b, "\x00", "\x00\xff") // not including "\x00\xff"
		del(t, b, "\x01")
	})
	mustMiss(t, e, "\x00")
	mustMiss(t, e, "\x00\x00")
	mustMiss(t, e, "\x01")
	mustGet(t, e, "\x00\xff", "v\x00\xff")
}

func testLargeValues(t *testing.T, s Suite) {
	e := s.Open(t)
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	commit(t, e, true, func(b storage.Batch) {
		for i := range 3 {
			big[0] = byte(i)
			if err := b.Set([]byte{'k', byte(i)}, big); err != nil {
				t.Fatal(err)
			}
		}
	})
	for i := range 3 {
		got, err := e.Get([]byte{'k', byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		big[0] = byte(i)
		if !bytes.Equal(got, big) {
			t.Fatalf("large value %d differs (len %d)", i, len(got))
		}
	}
	it := newIter(t, e, nil, nil)
	n := 0
	for ok := it.Last(); ok; ok = it.Prev() {
		if len(it.Value()) != 1<<20 {
			t.Fatalf("iterated value length %d", len(it.Value()))
		}
		n++
	}
	if n != 3 {
		t.Fatalf("iterated %d large values, want 3", n)
	}
}

// testConcurrent runs readers against a committing writer. Every batch
// writes the same counter to two keys, adds one row and deletes old rows
// (keeping 11), so a reader seeing the keys disagree, or a row count that
// does not match, saw part of a batch.
func testConcurrent(t *testing.T, s Suite) {
	e := s.Open(t)
	const batches = 200
	const readers = 4
	done := make(chan struct{})
	errs := make(chan error, readers+1)
	// The writer waits for a reader's check now and then, so that reads
	// really overlap the writes even on one CPU.
	tick := make(chan struct{}, readers)
	stopWaiting := make(chan struct{}) // closed when any reader quits
	var stopOnce sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := 1; i <= batches; i++ {
			b := e.NewBatch()
			v := fmt.Appendf(nil, "%08d", i)
			_ = b.Set([]byte("counter/a"), v)
			_ = b.Set(fmt.Appendf(nil, "row/%08d", i), v)
			_ = b.Set([]byte("counter/b"), v)
			if i > 10 {
				// Keep a sliding window of rows, exercising deletes.
				_ = b.DeleteRange([]byte("row/"), fmt.Appendf(nil, "row/%08d", i-10))
			}
			err := b.Commit(i%10 == 0)
			_ = b.Close()
			if err != nil {
				errs <- fmt.Errorf("commit %d: %w", i, err)
				return
			}
			if i%5 == 0 {
				select {
				case <-tick:
				case <-stopWaiting:
				}
			}
		}
	}()
	check := func(r storage.Reader) error {
		a, errA := r.Get([]byte("counter/a"))
		bv, errB := r.Get([]byte("counter/b"))
		if errors.Is(errA, storage.ErrNotFound) && errors.Is(errB, storage.ErrNotFound) {
			return nil
		}
		if errA != nil || errB != nil {
			return fmt.Errorf("get: %v, %v", errA, errB)
		}
		if !bytes.Equal(a, bv) {
			return fmt.Errorf("torn batch: counter/a=%s counter/b=%s", a, bv)
		}
		it, err := r.NewIter(storage.IterOptions{LowerBound: []byte("row/"), UpperBound: storage.PrefixEnd([]byte("row/"))})
		if err != nil {
			return err
		}
		defer it.Close()
		rows := 0
		var last []byte
		for ok := it.First(); ok; ok = it.Next() {
			rows++
			last = append(last[:0], it.Value()...)
		}
		var n int
		fmt.Sscanf(string(a), "%d", &n)
		if want := min(n, 11); rows != want || !bytes.Equal(last, a) {
			return fmt.Errorf("at counter %d: %d rows ending %q, want %d ending %q", n, rows, last, want, a)
		}
		return it.Error()
	}
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer stopOnce.Do(func() { close(stopWaiting) })
			for i := 0; i < 100000; i++ {
				select {
				case <-done:
					return
				default:
				}
				var err error
				if i%2 == 0 {
					snap := e.NewSnapshot()
					err = check(snap)
					_ = snap.Close()
				} else {
					// Separate Gets on the engine may see different
					// states; one iterator is a consistent view.
					err = checkIterOnly(e)
				}
				if err != nil {
					errs <- err
					return
				}
				select {
				case tick <- struct{}{}:
				default:
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mustGet(t, e, "counter/a", fmt.Sprintf("%08d", batches))
}

// checkIterOnly checks batch atomicity through one engine iterator, which
// is a consistent view by itself.
func checkIterOnly(r storage.Reader) error {
	it, err := r.NewIter(storage.IterOptions{})
	if err != nil {
		return err
	}
	defer it.Close()
	vals := map[string][]byte{}
	rows := 0
	for ok := it.First(); ok; ok = it.Next() {
		if bytes.HasPrefix(it.Key(), []byte("row/")) {
			rows++
			continue
		}
		vals[string(it.Key())] = bytes.Clone(it.Value())
	}
	a, b := vals["counter/a"], vals["counter/b"]
	if !bytes.Equal(a, b) {
		return fmt.Errorf("torn batch seen by iterator: counter/a=%s counter/b=%s", a, b)
	}
	var n int
	fmt.Sscanf(string(a), "%d", &n)
	if rows != min(n, 11) {
		return fmt.Errorf("iterator at counter %d saw %d rows", n, rows)
	}
	return it.Error()
}

func testAfterClose(t *testing.T, s Suite) {
	e := s.Open(t)
	put(t, e, kv{"a", "1"}, kv{"b", "2"})
	it := newIter(t, e, nil, nil)
	at(t, it, it.First(), "a")
	snap := e.NewSnapshot()
	pending := e.NewBatch()
	set(t, pending, "c", "3")

	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := e.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
	if _, err := e.Get([]byte("a")); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
	if _, err := e.NewIter(storage.IterOptions{}); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("new iter after close: %v", err)
	}
	if err := pending.Commit(true); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("commit of a batch made before close: %v", err)
	}
	_ = pending.Close()
	b := e.NewBatch()
	_ = b.Set([]byte("x"), []byte("y")) // may fail already
	if err := b.Commit(false); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("commit after close: %v", err)
	}
	_ = b.Close()
	if _, err := snap.Get([]byte("a")); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("snapshot get after close: %v", err)
	}
	_ = snap.Close()
	s2 := e.NewSnapshot()
	if _, err := s2.Get([]byte("a")); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("get on a snapshot made after close: %v", err)
	}
	if _, err := s2.NewIter(storage.IterOptions{}); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("iter on a snapshot made after close: %v", err)
	}
	_ = s2.Close()
	if it.Next() || it.First() || it.SeekGE([]byte("a")) || it.Valid() {
		t.Fatal("iterator still moves after its engine closed")
	}
	if !errors.Is(it.Error(), storage.ErrClosed) {
		t.Fatalf("iterator error after engine close: %v", it.Error())
	}
	if err := it.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("iterator close after engine close: %v", err)
	}
	if err := e.Checkpoint(filepath.Join(t.TempDir(), "ckpt")); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("checkpoint after close: %v", err)
	}
	if err := e.Sync(); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("sync after close: %v", err)
	}
	if err := e.CompactAll(context.Background()); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("compact all after close: %v", err)
	}
	if u := e.Usage(); u.SizeBytes < 0 || u.LiveBytes < 0 {
		t.Fatalf("usage after close: %+v", u)
	}
}

// Commit runs f on a new batch of e and commits it synced, failing t if
// either returns an error: the set-up step of tests that write state
// through a package's own staging functions.
func Commit(t testing.TB, e storage.Engine, f func(b storage.Batch) error) {
	t.Helper()
	b := e.NewBatch()
	defer b.Close()
	if err := f(b); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatalf("commit: %v", err)
	}
}
