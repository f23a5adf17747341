package watch

import (
	"context"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap/zaptest"

	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/mvcc/mvcctest"
	"github.com/metastore/metastore/internal/storage/memory"
)

// realStore drives the real MVCC store on the memory engine.
type realStore struct {
	t testing.TB
	s *mvcc.Store
	e *memory.Engine
}

func newRealHub(t *testing.T, opts Options) (*realStore, *Hub) {
	eng := memory.New()
	t.Cleanup(func() { _ = eng.Close() })
	s := mvcctest.Open(t, eng, zaptest.NewLogger(t), mvcc.WithCompactionSleepInterval(0))
	h := NewHub(s, zaptest.NewLogger(t), opts)
	s.OnCommit(h.Notify)
	t.Cleanup(h.Close)
	return &realStore{t: t, s: s, e: eng}, h
}

func (r *realStore) write(fn func(w *mvcc.Writer)) {
	b := r.e.NewBatch()
	defer b.Close()
	w := r.s.NewWriter(b)
	fn(w)
	if err := w.Finish(); err != nil {
		r.t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		r.t.Fatal(err)
	}
	w.Commit()
}

func (r *realStore) put(k, v string) {
	r.write(func(w *mvcc.Writer) {
		tw := w.Begin()
		tw.Put([]byte(k), []byte(v), 0)
		tw.End()
	})
}

func (r *realStore) compact(rev int64) <-chan struct{} {
	var done <-chan struct{}
	r.write(func(w *mvcc.Writer) {
		var err error
		if done, err = w.Compact(rev); err != nil {
			r.t.Fatal(err)
		}
	})
	return done
}

// With the real store: a stalled watcher catches up from history with
// prev_kv, across batches, while another watcher stays live; then a
// compaction past a stalled watcher's position cancels it with the
// compact revision and never skips events.
func TestRealStoreCatchUp(t *testing.T) {
	st, h := newRealHub(t, Options{MaxStreamResponses: 8, CatchUpEvents: 50})
	stalled := h.NewStream()
	sid := mustWatch(t, stalled, WatchRequest{Key: []byte("k"), End: []byte("l"), PrevKV: true})
	live := h.NewStream()
	lid := mustWatch(t, live, WatchRequest{Key: []byte("k"), End: []byte("l")})
	const n = 1000
	got := make(chan int, 1)
	go func() {
		evs, _ := collect(t, live, lid, n)
		got <- len(evs)
	}()
	for i := 0; i < n; i++ {
		st.put(fmt.Sprintf("k%d", i%10), fmt.Sprint(i))
	}
	<-got
	evs, _ := collect(t, stalled, sid, n)
	checkContiguous(t, evs, 2)
	for i, e := range evs {
		if (i >= 10) != (e.PrevKv != nil) {
			t.Fatalf("event %d: prev_kv %v", i, e.PrevKv)
		}
		if i >= 10 && string(e.PrevKv.Value) != fmt.Sprint(i-10) {
			t.Fatalf("event %d: prev_kv %s", i, e.PrevKv.Value)
		}
	}

	// Replay from the past through live.
	replay := h.NewStream()
	rid := mustWatch(t, replay, WatchRequest{Key: []byte("k"), End: []byte("l"), StartRev: 500})
	st.put("k0", "x")
	evs, _ = collect(t, replay, rid, n+3-500) // revisions 500..1002
	checkContiguous(t, evs, 500)

	// Compaction while behind.
	behind := h.NewStream()
	bid := mustWatch(t, behind, WatchRequest{Key: []byte("k"), End: []byte("l")})
	first := st.s.Rev() + 1
	for i := 0; i < 200; i++ {
		st.put("k1", "y")
	}
	<-st.compact(st.s.Rev() - 5)
	var seen []int64
	for {
		r := recv(t, behind)
		if r.WatchID != bid {
			t.Fatalf("unexpected %+v", r)
		}
		if r.Canceled {
			if r.CompactRevision != st.s.CompactRev() {
				t.Fatalf("cancel: %+v", r)
			}
			break
		}
		for _, e := range r.Events {
			seen = append(seen, e.Kv.ModRevision)
		}
	}
	for i, rev := range seen {
		if rev != first+int64(i) {
			t.Fatalf("gap before cancel at %d: %v", i, seen)
		}
	}
	if r := recv(t, live); r.WatchID != lid {
		t.Fatalf("live: %+v", r)
	}
}

// The store notifies put events without their PrevKv unless it had the
// previous value at hand (a key read hot): the hub reads it at send time,
// only for watchers that asked, at mod_revision-1 as etcd does, so it is
// there after a compaction at that revision and omitted after a compaction
// past it.
func TestRealStorePrevKVReadAtSend(t *testing.T) {
	st, h := newRealHub(t, Options{})
	withPrev := h.NewStream()
	pid := mustWatch(t, withPrev, WatchRequest{Key: []byte("k"), PrevKV: true})
	plain := h.NewStream()
	nid := mustWatch(t, plain, WatchRequest{Key: []byte("k")})
	putEvents := func(v string) []*mvccpb.Event {
		var evs []*mvccpb.Event
		st.write(func(w *mvcc.Writer) {
			tw := w.Begin()
			tw.Put([]byte("k"), []byte(v), 0)
			evs = tw.End()
		})
		return evs
	}
	check := func(what string, evs []*mvccpb.Event, want ...string) {
		t.Helper()
		var got []string
		for _, e := range evs {
			s := fmt.Sprintf("%s@%d", e.Kv.Value, e.Kv.ModRevision)
			if e.PrevKv != nil {
				s += fmt.Sprintf(" prev %s@%d", e.PrevKv.Value, e.PrevKv.ModRevision)
			}
			got = append(got, s)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: events %v, want %v", what, got, want)
		}
	}

	if evs := putEvents("v1"); evs[0].PrevKv != nil { // 2
		t.Fatalf("create carries prev %v", evs[0].PrevKv)
	}
	if evs := putEvents("v2"); evs[0].PrevKv != nil { // 3: v1 was never read
		t.Fatalf("overwrite of a key not read hot carries prev %v", evs[0].PrevKv)
	}
	<-st.compact(2) // the prev of revision 3 is at 2: still readable
	evs, _ := collect(t, withPrev, pid, 2)
	check("prev_kv watcher", evs, "v1@2", "v2@3 prev v1@2")
	evs, _ = collect(t, plain, nid, 2)
	check("plain watcher", evs, "v1@2", "v2@3")

	putEvents("v3") // 4
	<-st.compact(4) // the prev of revision 4 is at 3: compacted, omitted as etcd does
	evs, _ = collect(t, withPrev, pid, 1)
	check("prev_kv watcher after compaction", evs, "v3@4")

	// A point read makes the key hot: its value is cached and the next put
	// carries its prev itself.
	if _, err := st.s.Range(context.Background(), []byte("k"), nil, mvcc.RangeOptions{}); err != nil {
		t.Fatal(err)
	}
	if evs := putEvents("v4"); evs[0].PrevKv == nil || string(evs[0].PrevKv.Value) != "v3" { // 5
		t.Fatalf("overwrite of a hot key: prev %v, want v3", evs[0].PrevKv)
	}
	evs, _ = collect(t, withPrev, pid, 1)
	check("prev_kv watcher, hot key", evs, "v4@5 prev v3@4")
	evs, _ = collect(t, plain, nid, 2)
	check("plain watcher", evs, "v3@4", "v4@5")
	if err := st.s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}
