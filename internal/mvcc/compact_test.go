package mvcc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/pebble"
)

// history writes the same mixed history into s:
//
//	2 put a=1  3 put b=1  4 put a=2  5 del a  6 put c=1  7 put b=2
//	8 del c    9 put a=3  10 put d=1
func history(t testing.TB, s *Store) {
	put(t, s, "a", "1")
	put(t, s, "b", "1")
	put(t, s, "a", "2")
	del(t, s, "a", "")
	put(t, s, "c", "1")
	put(t, s, "b", "2")
	del(t, s, "c", "")
	put(t, s, "a", "3")
	put(t, s, "d", "1")
}

// versions lists every stored version as key@main(t for tombstones).
func versions(t testing.TB, eng storage.Engine) string {
	it, err := eng.NewIter(storage.IterOptions{LowerBound: prefixK, UpperBound: storage.PrefixEnd(prefixK)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var b bytes.Buffer
	for ok := it.First(); ok; ok = it.Next() {
		g, main, _, err := splitVersionKey(it.Key())
		if err != nil {
			t.Fatal(err)
		}
		u, _ := groupUserKey(g)
		tomb := ""
		if it.Value()[0]&flagTombstone != 0 {
			tomb = "t"
		}
		fmt.Fprintf(&b, "%s@%d%s ", u, main, tomb)
	}
	return b.String()
}

func countHistory(t testing.TB, eng storage.Engine) int {
	it, err := eng.NewIter(storage.IterOptions{LowerBound: prefixH, UpperBound: storage.PrefixEnd(prefixH)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}

func TestCompaction(t *testing.T) {
	for _, limit := range []int{1, 2, 1000} {
		t.Run(fmt.Sprint("batch", limit), func(t *testing.T) {
			s, eng := newStore(t, WithCompactionBatchLimit(limit))
			history(t, s)
			before := rng(t, s, "a", "\x00", RangeOptions{Rev: 8})
			h8, err := s.HashByRev(context.Background(), 8)
			if err != nil {
				t.Fatal(err)
			}
			waitDone(t, compact(t, s, 8))
			// each key keeps its newest version <= 8; tombstones older than 8
			// go, the one at exactly 8 stays
			// a's newest version <= 8 is a tombstone at 5 < 8: dropped with a@2, a@4
			if got := versions(t, eng); got != "a@9 b@7 c@8t d@10 " {
				t.Fatalf("after compaction: %s", got)
			}
			if n := countHistory(t, eng); n != 4 {
				t.Fatalf("history entries %d", n)
			}
			if s.CompactRev() != 8 {
				t.Fatalf("compact rev %d", s.CompactRev())
			}
			after := rng(t, s, "a", "\x00", RangeOptions{Rev: 8})
			if kvString(after.KVs) != kvString(before.KVs) {
				t.Fatalf("read at compact rev changed: %s vs %s", kvString(after.KVs), kvString(before.KVs))
			}
			if _, err := s.Range(ctx, []byte("a"), nil, RangeOptions{Rev: 7}); !errors.Is(err, ErrCompacted) {
				t.Fatalf("below compact rev: %v", err)
			}
			// the hash of a compaction revision is the one recorded while compacting
			h8b, err := s.HashByRev(context.Background(), 8)
			if err != nil {
				t.Fatal(err)
			}
			if h8b.Hash != h8.Hash || h8b.CompactRevision != -1 || h8b.HashRevision != 8 || h8b.Revision != 10 {
				t.Fatalf("hash at compaction: %+v vs %+v", h8b, h8)
			}
			// events from the compaction revision: the kept tombstone at 8
			evs, next, err := s.Events(ctx, 8, 0, []byte("\x00"), []byte("\x00"), 0)
			if err != nil || next != 11 || len(evs) != 3 || evs[0].Type != mvccpb.Event_DELETE || string(evs[0].Kv.Key) != "c" {
				t.Fatalf("events after compaction: %v next %d err %v", evs, next, err)
			}
			// a's previous version (tombstone at 5) is gone: no prev kv
			if evs[1].PrevKv != nil {
				t.Fatalf("prev kv of a@9: %v", evs[1].PrevKv)
			}
			if _, _, err := s.Events(ctx, 7, 0, []byte("a"), nil, 0); !errors.Is(err, ErrCompacted) {
				t.Fatalf("events below compact rev: %v", err)
			}
			b := eng.NewBatch()
			w := s.NewWriter(b)
			if _, err := w.Compact(8); !errors.Is(err, ErrCompacted) {
				t.Fatalf("compact again: %v", err)
			}
			if _, err := w.Compact(11); !errors.Is(err, ErrFutureRev) {
				t.Fatalf("compact future: %v", err)
			}
			b.Close()
			// compact everything: a single live version per key remains
			waitDone(t, compact(t, s, 10))
			if got := versions(t, eng); got != "a@9 b@7 d@10 " {
				t.Fatalf("after second compaction: %s", got)
			}
			if s.KeyCount() != 3 {
				t.Fatalf("key count %d", s.KeyCount())
			}
		})
	}
}

func TestHashIndependentOfPhysicalCompaction(t *testing.T) {
	s1, _ := newStore(t)
	s2, _ := newStore(t)
	history(t, s1)
	history(t, s2)
	for rev := int64(1); rev <= 10; rev++ {
		h1, err1 := s1.HashByRev(context.Background(), rev)
		h2, err2 := s2.HashByRev(context.Background(), rev)
		if err1 != nil || err2 != nil || h1 != h2 {
			t.Fatalf("rev %d: %+v %v / %+v %v", rev, h1, err1, h2, err2)
		}
	}
	// s1 compacts physically; s2 has the compaction only scheduled (as after
	// a crash before the background work ran): HashKV must agree.
	waitDone(t, compact(t, s1, 6))
	b := s2.eng.NewBatch()
	w := s2.NewWriter(b)
	if _, err := w.Compact(6); err != nil {
		t.Fatal(err)
	}
	s2.comp.Load().stop() // nothing physical happens on s2
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close()
	s2.compactRev.Store(6)
	s2.recordHash(mustRecorded(t, s1, 6))
	for _, rev := range []int64{7, 8, 9, 10, 0} {
		h1, err1 := s1.HashByRev(context.Background(), rev)
		h2, err2 := s2.HashByRev(context.Background(), rev)
		if err1 != nil || err2 != nil || h1 != h2 {
			t.Fatalf("rev %d: %+v %v / %+v %v", rev, h1, err1, h2, err2)
		}
	}
	if _, err := s1.HashByRev(context.Background(), 5); !errors.Is(err, ErrCompacted) {
		t.Fatal(err)
	}
	if _, err := s1.HashByRev(context.Background(), 11); !errors.Is(err, ErrFutureRev) {
		t.Fatal(err)
	}
	// a different history hashes differently
	s3, _ := newStore(t)
	history(t, s3)
	put(t, s3, "e", "1")
	h1, _ := s1.HashByRev(context.Background(), 0)
	h3, _ := s3.HashByRev(context.Background(), 0)
	if h1.Hash == h3.Hash {
		t.Fatal("different histories, same hash")
	}
}

func mustRecorded(t *testing.T, s *Store, rev int64) recordedHash {
	h, ok := s.recorded(rev)
	if !ok {
		t.Fatalf("no hash recorded at %d", rev)
	}
	return h
}

func TestReopenKeepsRevisionsAndResumesCompaction(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	eng, err := pebble.Open(dir, pebble.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, eng)
	history(t, s)
	// schedule a compaction but stop before any physical work
	s.comp.Load().stop()
	b := eng.NewBatch()
	w := s.NewWriter(b)
	if _, err := w.Compact(8); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	w.Commit()
	b.Close()
	hashBefore, err := s.HashByRev(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}

	eng, err = pebble.Open(dir, pebble.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	s = openStore(t, eng)
	if s.Rev() != 10 || s.CompactRev() != 8 || s.KeyCount() != 3 {
		t.Fatalf("reopened: rev %d compact %d keys %d", s.Rev(), s.CompactRev(), s.KeyCount())
	}
	j := s.comp.Load().pendingJob(8)
	if j != nil {
		waitDone(t, j.done)
	}
	if got := versions(t, eng); got != "a@9 b@7 c@8t d@10 " {
		t.Fatalf("resumed compaction left %s", got)
	}
	if fin, _, _ := readInt64(eng, storage.KeyCompactRevision); fin != 8 {
		t.Fatalf("finished compact %d", fin)
	}
	hashAfter, err := s.HashByRev(context.Background(), 10)
	if err != nil || hashAfter != hashBefore {
		t.Fatalf("hash changed across reopen+compaction: %+v %+v %v", hashBefore, hashAfter, err)
	}
	// revisions continue, never reused
	put(t, s, "a", "4")
	kv := rng(t, s, "a", "", RangeOptions{}).KVs[0]
	if kv.ModRevision != 11 || kv.CreateRevision != 9 || kv.Version != 2 {
		t.Fatalf("after reopen: %v", kv)
	}
}

func TestEventsLimitAndPrevKv(t *testing.T) {
	s, _ := newStore(t)
	history(t, s)
	apply(t, s, func(tw *TxnWrite) { // rev 11: three events
		tw.Put([]byte("x"), []byte("1"), 0)
		tw.Put([]byte("y"), []byte("1"), 0)
		tw.DeleteRange([]byte("a"), []byte("b"))
	})
	evs, next, err := s.Events(ctx, 2, 0, []byte("a"), nil, 0)
	if err != nil || next != 12 {
		t.Fatal(err, next)
	}
	var got []string
	for _, ev := range evs {
		p := "-"
		if ev.PrevKv != nil {
			p = fmt.Sprintf("%s@%d", ev.PrevKv.Value, ev.PrevKv.ModRevision)
		}
		got = append(got, fmt.Sprintf("%s@%d prev %s", ev.Type, ev.Kv.ModRevision, p))
	}
	want := "[PUT@2 prev - PUT@4 prev 1@2 DELETE@5 prev 2@4 PUT@9 prev - DELETE@11 prev 3@9]"
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v\nwant %s", got, want)
	}
	// limit never splits a revision
	evs, next, err = s.Events(ctx, 10, 0, []byte("\x00"), []byte("\x00"), 2)
	if err != nil || len(evs) != 4 || next != 12 {
		t.Fatalf("limit: %d events next %d %v", len(evs), next, err)
	}
	evs, next, err = s.Events(ctx, 2, 6, []byte("\x00"), []byte("\x00"), 2)
	if err != nil || len(evs) != 2 || next != 4 {
		t.Fatalf("limit 2: %d events next %d %v", len(evs), next, err)
	}
	evs, next, err = s.Events(ctx, 12, 0, []byte("a"), nil, 0)
	if err != nil || len(evs) != 0 || next != 12 {
		t.Fatalf("from the future: %v %d %v", evs, next, err)
	}
}

func TestRangeLimitCountKeysOnly(t *testing.T) {
	s, _ := newStore(t)
	for i := 0; i < 20; i++ {
		put(t, s, fmt.Sprintf("k%02d", i), "v")
		put(t, s, fmt.Sprintf("k%02d", i), "w")
	}
	r := rng(t, s, "k05", "k15", RangeOptions{Limit: 3})
	if len(r.KVs) != 3 || r.Count != 10 || string(r.KVs[0].Key) != "k05" {
		t.Fatalf("%s %d", kvString(r.KVs), r.Count)
	}
	r = rng(t, s, "k05", "k15", RangeOptions{Limit: 3, NoTotal: true})
	if len(r.KVs) != 3 || r.Count != 3 {
		t.Fatalf("no total: %d", r.Count)
	}
	r = rng(t, s, "k", "l", RangeOptions{Count: true})
	if len(r.KVs) != 0 || r.Count != 20 {
		t.Fatalf("count: %d", r.Count)
	}
	r = rng(t, s, "k", "l", RangeOptions{KeysOnly: true, Rev: 10})
	if len(r.KVs) != 5 || r.KVs[0].Value != nil || r.KVs[4].Version != 1 {
		t.Fatalf("keys only at 10: %s", kvString(r.KVs))
	}
	// binary keys with zero bytes sort like bytes
	put(t, s, "z\x00", "1")
	put(t, s, "z", "1")
	put(t, s, "z\x00\x00", "1")
	put(t, s, "z\x01", "1")
	r = rng(t, s, "z", "\x00", RangeOptions{})
	if kvString(r.KVs) != "z=1(c43,m43,v1,l0) z\x00=1(c42,m42,v1,l0) z\x00\x00=1(c44,m44,v1,l0) z\x01=1(c45,m45,v1,l0) " {
		t.Fatalf("binary: %q", kvString(r.KVs))
	}
	r = rng(t, s, "z\x00", "z\x01", RangeOptions{})
	if len(r.KVs) != 2 {
		t.Fatalf("binary range: %q", kvString(r.KVs))
	}
}

func TestReadTxnPinned(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, "a", "1")
	rt := s.Read()
	defer rt.End()
	put(t, s, "a", "2")
	r, err := rt.Range(ctx, []byte("a"), nil, RangeOptions{})
	if err != nil || string(r.KVs[0].Value) != "1" || r.Rev != 2 || rt.Rev() != 2 {
		t.Fatalf("%v %v", r, err)
	}
}
