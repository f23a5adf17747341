package mvcc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap/zaptest"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

var ctx = context.Background()

func openStore(t testing.TB, eng storage.Engine, opts ...Option) *Store {
	t.Helper()
	opts = append([]Option{WithCompactionSleepInterval(0)}, opts...)
	s, err := Open(eng, zaptest.NewLogger(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// As mvcctest.Open does for other packages (it cannot be
		// imported here): a store left inconsistent fails its test.
		if err := s.CheckInvariants(); err != nil && !errors.Is(err, storage.ErrClosed) {
			t.Error(err)
		}
		_ = s.Close()
	})
	return s
}

func newStore(t testing.TB, opts ...Option) (*Store, storage.Engine) {
	eng := memory.New()
	t.Cleanup(func() { _ = eng.Close() })
	return openStore(t, eng, opts...), eng
}

// apply runs fn in one write txn, in its own batch, and commits it.
func apply(t testing.TB, s *Store, fn func(tw *TxnWrite)) []*mvccpb.Event {
	t.Helper()
	b := s.eng.NewBatch()
	defer b.Close()
	w := s.NewWriter(b)
	tw := w.Begin()
	fn(tw)
	evs := tw.End()
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	w.Commit()
	return evs
}

func put(t testing.TB, s *Store, k, v string) {
	t.Helper()
	apply(t, s, func(tw *TxnWrite) { tw.Put([]byte(k), []byte(v), 0) })
}

func del(t testing.TB, s *Store, k, end string) {
	t.Helper()
	var e []byte
	if end != "" {
		e = []byte(end)
	}
	apply(t, s, func(tw *TxnWrite) { tw.DeleteRange([]byte(k), e) })
}

func compact(t testing.TB, s *Store, rev int64) <-chan struct{} {
	t.Helper()
	b := s.eng.NewBatch()
	defer b.Close()
	w := s.NewWriter(b)
	ch, err := w.Compact(rev)
	if err != nil {
		t.Fatalf("compact %d: %v", rev, err)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	w.Commit()
	return ch
}

func waitDone(t testing.TB, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("compaction did not finish")
	}
}

// kvString renders KVs compactly for comparisons.
func kvString(kvs []*mvccpb.KeyValue) string {
	var b bytes.Buffer
	for _, kv := range kvs {
		fmt.Fprintf(&b, "%s=%s(c%d,m%d,v%d,l%d) ", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
	}
	return b.String()
}

func rng(t testing.TB, s *Store, k, end string, ro RangeOptions) *RangeResult {
	t.Helper()
	var e []byte
	if end != "" {
		e = []byte(end)
	}
	r, err := s.Range(ctx, []byte(k), e, ro)
	if err != nil {
		t.Fatalf("range %q %q %+v: %v", k, end, ro, err)
	}
	return r
}

func TestEmptyStoreStartsAtRevisionOne(t *testing.T) {
	s, _ := newStore(t)
	if s.Rev() != 1 || s.CompactRev() != -1 || s.KeyCount() != 0 {
		t.Fatalf("rev %d compact %d keys %d", s.Rev(), s.CompactRev(), s.KeyCount())
	}
	r := rng(t, s, "a", "\x00", RangeOptions{})
	if len(r.KVs) != 0 || r.Count != 0 || r.Rev != 1 {
		t.Fatalf("%+v", r)
	}
}

func TestPutVersionsAndRevisions(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, "a", "1") // rev 2
	put(t, s, "a", "2") // rev 3
	put(t, s, "b", "1") // rev 4
	del(t, s, "a", "")  // rev 5
	put(t, s, "a", "3") // rev 6
	if s.Rev() != 6 {
		t.Fatalf("rev %d", s.Rev())
	}
	got := kvString(rng(t, s, "a", "c", RangeOptions{}).KVs)
	want := "a=3(c6,m6,v1,l0) b=1(c4,m4,v1,l0) "
	if got != want {
		t.Fatalf("got %s want %s", got, want)
	}
	cases := []struct {
		rev  int64
		want string
	}{
		{1, ""},
		{2, "a=1(c2,m2,v1,l0) "},
		{3, "a=2(c2,m3,v2,l0) "},
		{4, "a=2(c2,m3,v2,l0) b=1(c4,m4,v1,l0) "},
		{5, "b=1(c4,m4,v1,l0) "},
	}
	for _, c := range cases {
		r := rng(t, s, "a", "\x00", RangeOptions{Rev: c.rev})
		if got := kvString(r.KVs); got != c.want || r.Rev != 6 {
			t.Errorf("rev %d: got %s (header %d) want %s", c.rev, got, r.Rev, c.want)
		}
	}
	if s.KeyCount() != 2 {
		t.Fatalf("keys %d", s.KeyCount())
	}
	if _, err := s.Range(ctx, []byte("a"), nil, RangeOptions{Rev: 7}); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("future: %v", err)
	}
}

func TestDeleteNothingDoesNotBumpRevision(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, "a", "1")
	evs := apply(t, s, func(tw *TxnWrite) {
		if d := tw.DeleteRange([]byte("x"), []byte("z")); len(d) != 0 {
			t.Fatalf("deleted %v", d)
		}
		if tw.Rev() != 2 {
			t.Fatalf("txn rev %d", tw.Rev())
		}
	})
	if len(evs) != 0 || s.Rev() != 2 {
		t.Fatalf("events %v rev %d", evs, s.Rev())
	}
}

func TestTxnOneRevisionSubRevisionsAndOverlay(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, "a", "0") // 2
	b := s.eng.NewBatch()
	defer b.Close()
	w := s.NewWriter(b)
	tw := w.Begin()
	if p := tw.Put([]byte("a"), []byte("1"), 5); p == nil || p.ModRevision != 2 || p.Version != 1 {
		t.Fatalf("prev %v", p)
	}
	tw.Put([]byte("b"), []byte("1"), 0)
	r, err := tw.Range(ctx, []byte("a"), []byte("\x00"), RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := kvString(r.KVs); got != "a=1(c2,m3,v2,l5) b=1(c3,m3,v1,l0) " || r.Rev != 3 {
		t.Fatalf("in-txn range %s rev %d", got, r.Rev)
	}
	d := tw.DeleteRange([]byte("a"), []byte("c"))
	if len(d) != 2 {
		t.Fatalf("deleted %d", len(d))
	}
	evs := tw.End()
	if len(evs) != 4 || evs[2].Type != mvccpb.Event_DELETE || evs[2].Kv.ModRevision != 3 || string(evs[2].PrevKv.Value) != "1" {
		t.Fatalf("events %v", evs)
	}
	// a second txn in the same Writer sees the first one's writes
	tw2 := w.Begin()
	if tw2.Rev() != 3 {
		t.Fatalf("second txn begins at %d", tw2.Rev())
	}
	tw2.Put([]byte("a"), []byte("2"), 0)
	r, _ = tw2.Range(ctx, []byte("a"), nil, RangeOptions{})
	if got := kvString(r.KVs); got != "a=2(c4,m4,v1,l0) " {
		t.Fatalf("second txn range %s", got)
	}
	tw2.End()
	// nothing is visible before Commit
	if s.Rev() != 2 || kvString(rng(t, s, "a", "\x00", RangeOptions{}).KVs) != "a=0(c2,m2,v1,l0) " {
		t.Fatal("uncommitted writer visible")
	}
	var got []int64
	s.OnCommit(func(rev int64, evs []*mvccpb.Event) { got = append(got, rev, int64(len(evs))) })
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	w.Commit()
	if fmt.Sprint(got) != "[3 4 4 1]" || s.Rev() != 4 || s.KeyCount() != 1 {
		t.Fatalf("commits %v rev %d keys %d", got, s.Rev(), s.KeyCount())
	}
	// history keeps sub revisions
	evs, next, err := s.Events(ctx, 3, 0, []byte("a"), []byte("\x00"), 0)
	if err != nil || next != 5 || len(evs) != 5 {
		t.Fatalf("events %v next %d err %v", evs, next, err)
	}
}

func TestDroppedWriterLeavesNoTrace(t *testing.T) {
	s, eng := newStore(t)
	put(t, s, "a", "1")
	b := eng.NewBatch()
	w := s.NewWriter(b)
	tw := w.Begin()
	tw.Put([]byte("a"), []byte("x"), 0)
	tw.Put([]byte("b"), []byte("x"), 0)
	tw.End()
	if _, err := w.Compact(2); err != nil {
		t.Fatal(err)
	}
	w.Close()
	_ = b.Close() // dropped
	if s.Rev() != 2 || s.KeyCount() != 1 || s.CompactRev() != -1 {
		t.Fatalf("rev %d keys %d compact %d", s.Rev(), s.KeyCount(), s.CompactRev())
	}
	put(t, s, "c", "1")
	if got := kvString(rng(t, s, "a", "\x00", RangeOptions{}).KVs); got != "a=1(c2,m2,v1,l0) c=1(c3,m3,v1,l0) " {
		t.Fatal(got)
	}
	// Nor in the latest-version cache: the next writes see what committed.
	evs := apply(t, s, func(tw *TxnWrite) {
		tw.Put([]byte("a"), []byte("2"), 0)
		tw.Put([]byte("b"), []byte("2"), 0)
	})
	// (No PrevKv: the value of a key not read hot is not cached; the watch
	// hub reads it when a watcher asks.)
	if got := eventsString(evs); got != "PUT a=2(c2,m4,v2,l0) |\nPUT b=2(c4,m4,v1,l0) |\n" {
		t.Fatal(got)
	}
}
