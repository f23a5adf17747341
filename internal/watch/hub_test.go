package watch

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap/zaptest"
)

const testTimeout = 10 * time.Second

func newTestHub(t testing.TB, opts Options) (*fakeStore, *Hub) {
	t.Helper()
	f := newFakeStore()
	h := NewHub(f, zaptest.NewLogger(t), opts)
	f.mu.Lock()
	f.notify = h.Notify
	f.mu.Unlock()
	t.Cleanup(h.Close)
	return f, h
}

func recv(t testing.TB, s *Stream) *Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	r, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return r
}

func mustWatch(t testing.TB, s *Stream, req WatchRequest) int64 {
	t.Helper()
	id, err := s.Watch(context.Background(), req)
	if err != nil {
		t.Fatalf("Watch(%+v): %v", req, err)
	}
	r := recv(t, s)
	if !r.Created || r.WatchID != id || r.Canceled {
		t.Fatalf("want created response for %d, got %+v", id, r)
	}
	return id
}

// collect reads responses until n events arrived; every response must be an
// event response of watcher id.
func collect(t testing.TB, s *Stream, id int64, n int) ([]*mvccpb.Event, []*Response) {
	t.Helper()
	var evs []*mvccpb.Event
	var rs []*Response
	for len(evs) < n {
		r := recv(t, s)
		if r.WatchID != id || r.Created || r.Canceled || len(r.Events) == 0 {
			t.Fatalf("after %d events: unexpected response %+v", len(evs), r)
		}
		evs = append(evs, r.Events...)
		rs = append(rs, r)
	}
	if len(evs) != n {
		t.Fatalf("got %d events, want %d", len(evs), n)
	}
	return evs, rs
}

func keysOf(evs []*mvccpb.Event) []string {
	var ks []string
	for _, e := range evs {
		ks = append(ks, fmt.Sprintf("%s:%s@%d", e.Type, e.Kv.Key, e.Kv.ModRevision))
	}
	return ks
}

// checkContiguous verifies events are exactly revisions first..first+len-1,
// one event each (no gap, no duplicate).
func checkContiguous(t testing.TB, evs []*mvccpb.Event, first int64) {
	t.Helper()
	for i, e := range evs {
		if e.Kv.ModRevision != first+int64(i) {
			t.Fatalf("event %d has revision %d, want %d", i, e.Kv.ModRevision, first+int64(i))
		}
	}
}

func TestRanges(t *testing.T) {
	f, h := newTestHub(t, Options{})
	s := h.NewStream()
	single := mustWatch(t, s, WatchRequest{Key: []byte("a")})
	s2 := h.NewStream()
	prefix := mustWatch(t, s2, WatchRequest{Key: []byte("b/"), End: []byte("b0")})
	s3 := h.NewStream()
	from := mustWatch(t, s3, WatchRequest{Key: []byte("b/x"), End: []byte{0}})
	s4 := h.NewStream()
	all := mustWatch(t, s4, WatchRequest{Key: []byte{0}, End: []byte{0}})

	for _, k := range []string{"a", "ab", "b/", "b/x", "b0", "c", "\x00"} {
		f.put(k, "v")
	}
	evs, _ := collect(t, s, single, 1)
	if got := keysOf(evs); fmt.Sprint(got) != "[PUT:a@2]" {
		t.Fatalf("single: %v", got)
	}
	evs, _ = collect(t, s2, prefix, 2)
	if got := keysOf(evs); fmt.Sprint(got) != "[PUT:b/@4 PUT:b/x@5]" {
		t.Fatalf("prefix: %v", got)
	}
	evs, _ = collect(t, s3, from, 3)
	if got := keysOf(evs); fmt.Sprint(got) != "[PUT:b/x@5 PUT:b0@6 PUT:c@7]" {
		t.Fatalf("from-key: %v", got)
	}
	evs, _ = collect(t, s4, all, 7)
	checkContiguous(t, evs, 2)
}

func TestTxnEventsInOneResponse(t *testing.T) {
	f, h := newTestHub(t, Options{})
	s := h.NewStream()
	id := mustWatch(t, s, WatchRequest{Key: []byte("k"), End: []byte("l"), PrevKV: true})
	f.put("k1", "old")
	rev := f.txn(put("k1", "new"), put("k2", "x"), del("k1"), put("zz", "out"))
	collect(t, s, id, 1)
	_, rs := collect(t, s, id, 3)
	if len(rs) != 1 {
		t.Fatalf("txn events came in %d responses", len(rs))
	}
	r := rs[0]
	if r.Revision != rev || fmt.Sprint(keysOf(r.Events)) != fmt.Sprintf("[PUT:k1@%d PUT:k2@%d DELETE:k1@%d]", rev, rev, rev) {
		t.Fatalf("txn response: rev %d %v", r.Revision, keysOf(r.Events))
	}
	if p := r.Events[0].PrevKv; p == nil || string(p.Value) != "old" {
		t.Fatalf("prev_kv of update: %v", p)
	}
	if r.Events[1].PrevKv != nil {
		t.Fatalf("create event carries prev_kv")
	}
	if p := r.Events[2].PrevKv; p == nil || string(p.Value) != "new" {
		t.Fatalf("prev_kv of delete: %v", p)
	}
}

func TestFiltersAndPrevKV(t *testing.T) {
	f, h := newTestHub(t, Options{})
	s := h.NewStream()
	noPut := mustWatch(t, s, WatchRequest{Key: []byte("k"), NoPut: true})
	noDel := mustWatch(t, s, WatchRequest{Key: []byte("k"), NoDelete: true})
	f.put("k", "1")
	f.put("k", "2")
	f.txn(del("k"))
	var gotPut, gotDel []string
	for len(gotPut) < 2 || len(gotDel) < 1 {
		r := recv(t, s)
		for _, e := range r.Events {
			if e.PrevKv != nil {
				t.Fatalf("prev_kv sent without being asked: %v", e)
			}
			switch r.WatchID {
			case noPut:
				gotDel = append(gotDel, e.Type.String())
			case noDel:
				gotPut = append(gotPut, e.Type.String())
			}
		}
	}
	if fmt.Sprint(gotPut, gotDel) != "[PUT PUT] [DELETE]" {
		t.Fatalf("filters: %v %v", gotPut, gotDel)
	}
}

func TestCreatedBeforeEventsAndReplay(t *testing.T) {
	f, h := newTestHub(t, Options{CatchUpEvents: 7})
	for i := 0; i < 50; i++ {
		f.put(fmt.Sprintf("k%d", i%5), "v")
	}
	s := h.NewStream()
	id, err := s.Watch(context.Background(), WatchRequest{Key: []byte("k"), End: []byte("l"), StartRev: 10})
	if err != nil {
		t.Fatal(err)
	}
	// Writes continue while the watcher replays history.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			f.put(fmt.Sprintf("k%d", i%5), "w")
		}
	}()
	r := recv(t, s)
	if !r.Created || r.WatchID != id {
		t.Fatalf("first response is not created: %+v", r)
	}
	<-done
	evs, _ := collect(t, s, id, 250-8)
	checkContiguous(t, evs, 10)
}

func TestFutureRevisionWaitsSilently(t *testing.T) {
	f, h := newTestHub(t, Options{})
	s := h.NewStream()
	id := mustWatch(t, s, WatchRequest{Key: []byte("k"), StartRev: 5, ProgressNotify: true})
	f.put("k", "2")
	f.put("k", "3")
	// Not synced to its start yet: no progress of any kind.
	s.ProgressTick()
	if err := s.RequestProgress(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.put("k", "4")
	f.put("k", "5")
	r := recv(t, s)
	if len(r.Events) != 1 || r.Events[0].Kv.ModRevision != 5 || r.WatchID != id {
		t.Fatalf("want the event at 5 first, got %+v", r)
	}
	// The pending progress request is answered once synced, after the event.
	r = recv(t, s)
	if r.WatchID != InvalidWatchID || r.Revision != 5 || len(r.Events) != 0 {
		t.Fatalf("want progress -1 at 5, got %+v", r)
	}
}

func TestCompactedStart(t *testing.T) {
	f, h := newTestHub(t, Options{})
	for i := 0; i < 10; i++ {
		f.put("k", "v")
	}
	f.compactTo(6)
	s := h.NewStream()
	id, _ := s.Watch(context.Background(), WatchRequest{Key: []byte("k"), StartRev: 3})
	if r := recv(t, s); !r.Created || r.WatchID != id || r.Canceled {
		t.Fatalf("want created, got %+v", r)
	}
	if r := recv(t, s); !r.Canceled || r.CompactRevision != 6 || r.WatchID != id {
		t.Fatalf("want compaction cancel, got %+v", r)
	}
	// Watching exactly at the compact revision works, and prev_kv of a
	// compacted version is omitted.
	id2 := mustWatch(t, s, WatchRequest{Key: []byte("k"), StartRev: 6, PrevKV: true})
	evs, _ := collect(t, s, id2, 6)
	checkContiguous(t, evs, 6)
	if evs[0].PrevKv != nil || evs[1].PrevKv == nil {
		t.Fatalf("prev_kv: %v / %v", evs[0].PrevKv, evs[1].PrevKv)
	}
	if h.WatcherCount() != 1 {
		t.Fatalf("watchers: %d", h.WatcherCount())
	}
}

func TestIDsCancelAndErrors(t *testing.T) {
	f, h := newTestHub(t, Options{})
	s := h.NewStream()
	ctx := context.Background()
	if id := mustWatch(t, s, WatchRequest{ID: 1, Key: []byte("a")}); id != 1 {
		t.Fatalf("chosen id: %d", id)
	}
	if _, err := s.Watch(ctx, WatchRequest{ID: 1, Key: []byte("a")}); err != ErrDuplicateID {
		t.Fatalf("duplicate: %v", err)
	}
	if r := recv(t, s); !r.Created || !r.Canceled || r.WatchID != InvalidWatchID || r.CancelReason != ErrDuplicateID.Error() {
		t.Fatalf("duplicate response: %+v", r)
	}
	if _, err := s.Watch(ctx, WatchRequest{Key: []byte("b"), End: []byte("a")}); err != ErrEmptyRange {
		t.Fatalf("empty range: %v", err)
	}
	if r := recv(t, s); r.CancelReason != ErrEmptyRange.Error() {
		t.Fatalf("empty range response: %+v", r)
	}
	if id := mustWatch(t, s, WatchRequest{Key: []byte("a")}); id != 0 {
		t.Fatalf("auto id: %d", id)
	}
	if id := mustWatch(t, s, WatchRequest{Key: []byte("a")}); id != 2 {
		t.Fatalf("auto id skips taken ones: %d", id)
	}
	f.put("a", "1")
	seen := map[int64]bool{}
	for len(seen) < 3 {
		r := recv(t, s)
		seen[r.WatchID] = true
	}
	if ok, _ := s.Cancel(ctx, 0); !ok {
		t.Fatal("cancel failed")
	}
	if r := recv(t, s); !r.Canceled || r.WatchID != 0 || r.Created {
		t.Fatalf("cancel response: %+v", r)
	}
	if ok, _ := s.Cancel(ctx, 42); ok {
		t.Fatal("cancel of unknown id")
	}
	f.put("a", "2")
	for i := 0; i < 2; i++ {
		if r := recv(t, s); r.WatchID == 0 {
			t.Fatalf("event after cancel: %+v", r)
		}
	}
	s.Close()
	if n := h.WatcherCount(); n != 0 {
		t.Fatalf("watchers after close: %d", n)
	}
	if _, err := s.Next(ctx); err != ErrClosed {
		t.Fatalf("Next after close: %v", err)
	}
}

func TestProgress(t *testing.T) {
	f, h := newTestHub(t, Options{})
	s := h.NewStream()
	ctx := context.Background()
	// No watchers: nothing is sent (etcd).
	if err := s.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	a := mustWatch(t, s, WatchRequest{Key: []byte("a"), ProgressNotify: true})
	b := mustWatch(t, s, WatchRequest{Key: []byte("b")})
	rev := f.put("a", "1")
	collect(t, s, a, 1)
	f.put("c", "x")
	if err := s.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	r := recv(t, s)
	if r.WatchID != InvalidWatchID || r.Revision != rev+1 || len(r.Events) != 0 || r.Created || r.Canceled {
		t.Fatalf("progress: %+v", r)
	}
	// The first tick after an event is elided; the next one notifies.
	s.ProgressTick()
	s.ProgressTick()
	r = recv(t, s)
	if r.WatchID != a || len(r.Events) != 0 || r.Revision < rev+1 {
		t.Fatalf("progress notify: %+v (b=%d)", r, b)
	}
}

func TestProgressWaitsForUnsynced(t *testing.T) {
	f, h := newTestHub(t, Options{})
	f.gate = make(chan struct{})
	for i := 0; i < 5; i++ {
		f.put("k", "v")
	}
	// The dispatcher must have handled the puts: otherwise the watcher,
	// finding no history to read below the dispatched revision, joins the
	// synced group at once and gets the events live, which is correct but
	// not what this test holds back with the gate.
	waitDispatched(t, h, 6)
	s := h.NewStream()
	ctx := context.Background()
	id := mustWatch(t, s, WatchRequest{Key: []byte("k"), StartRev: 2})
	if err := s.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	// While the catch-up read is held, the request stays pending: the
	// next response is the control response of another watcher.
	other := mustWatch(t, s, WatchRequest{Key: []byte("zzz")})
	_ = other
	close(f.gate)
	evs, _ := collect(t, s, id, 5)
	checkContiguous(t, evs, 2)
	r := recv(t, s)
	if r.WatchID != InvalidWatchID || r.Revision != 6 {
		t.Fatalf("progress after catch-up: %+v", r)
	}
}

// A reader that never reads does not block Notify, writes or other
// watchers; its queue stays bounded; once it reads it gets every event in
// order.
func TestStalledWatcher(t *testing.T) {
	opts := Options{MaxStreamResponses: 16, MaxStreamBytes: 1 << 20, CatchUpEvents: 100}
	f, h := newTestHub(t, opts)
	stalled := h.NewStream()
	sid := mustWatch(t, stalled, WatchRequest{Key: []byte("k"), End: []byte("l"), PrevKV: true})
	live := h.NewStream()
	lid := mustWatch(t, live, WatchRequest{Key: []byte("k"), End: []byte("l")})

	const n = 5000
	got := make(chan []*mvccpb.Event, 1)
	go func() {
		evs, _ := collect(t, live, lid, n)
		got <- evs
	}()
	for i := 0; i < n; i++ {
		f.put(fmt.Sprintf("k%d", i%100), "value")
	}
	evs := <-got // the live watcher got everything while the other stalls
	checkContiguous(t, evs, 2)

	stalled.mu.Lock()
	queued, bytes := len(stalled.q)-stalled.head, stalled.bytes
	stalled.mu.Unlock()
	// Bounded by the limit plus one catch-up batch (100 events).
	if queued > opts.MaxStreamResponses+100 || bytes > opts.MaxStreamBytes {
		t.Fatalf("stalled queue: %d responses, %d bytes", queued, bytes)
	}
	if st := h.Stats(); st.Unsynced != 1 {
		t.Fatalf("stalled watcher should be unsynced: %+v", st)
	}
	evs, _ = collect(t, stalled, sid, n)
	checkContiguous(t, evs, 2)
	for i, e := range evs[100:] {
		if e.PrevKv == nil {
			t.Fatalf("event %d lost prev_kv", i+100)
		}
	}
	if st := h.Stats(); st.Unsynced != 0 || st.Synced != 2 {
		t.Fatalf("after catch-up: %+v", st)
	}
	if f.reads.Load() == 0 {
		t.Fatal("the stalled watcher was never served from history")
	}
}

// Compaction while a watcher catches up: it gets every event up to where
// history remains, or is cancelled with the compact revision, never a gap.
func TestCatchUpAcrossCompaction(t *testing.T) {
	opts := Options{MaxStreamResponses: 4, CatchUpEvents: 10}
	f, h := newTestHub(t, opts)
	s := h.NewStream()
	id := mustWatch(t, s, WatchRequest{Key: []byte("k")})
	for i := 0; i < 100; i++ {
		f.put("k", "v")
	}
	f.compactTo(90)
	var evs []*mvccpb.Event
	for {
		r := recv(t, s)
		if r.WatchID != id {
			t.Fatalf("unexpected %+v", r)
		}
		if r.Canceled {
			if r.CompactRevision != 90 {
				t.Fatalf("cancel without compact revision: %+v", r)
			}
			break
		}
		evs = append(evs, r.Events...)
	}
	checkContiguous(t, evs, 2)
	if last := evs[len(evs)-1].Kv.ModRevision; last >= 90 {
		t.Fatalf("cancelled although caught up to %d", last)
	}
	if h.WatcherCount() != 0 {
		t.Fatal("compacted watcher not freed")
	}

	// Compaction below what the watcher still needs: nothing is lost.
	s2 := h.NewStream()
	id2 := mustWatch(t, s2, WatchRequest{Key: []byte("k")})
	for i := 0; i < 50; i++ {
		f.put("k", "v")
	}
	f.compactTo(h.Rev() - 60)
	evs, _ = collect(t, s2, id2, 50)
	checkContiguous(t, evs, 102)
}

// When the dispatcher cannot keep up, Notify drops its buffer instead of
// blocking or growing, and watchers recover the events from history.
func TestNotifyOverflow(t *testing.T) {
	f, h := newTestHub(t, Options{MaxPendingEvents: 10})
	s := h.NewStream()
	id := mustWatch(t, s, WatchRequest{Key: []byte{0}, End: []byte{0}})
	future := mustWatch(t, s, WatchRequest{Key: []byte("k"), StartRev: 1000})
	h.mu.Lock() // stall the dispatcher
	for i := 0; i < 100; i++ {
		f.put("k", "v") // must not block
	}
	// The dispatcher may take the queue once before it blocks on h.mu, so
	// the transient overflow mark may already be consumed; the counter is not.
	over := h.Overflows()
	h.mu.Unlock()
	if over == 0 {
		t.Fatal("no overflow")
	}
	evs, _ := collect(t, s, id, 100)
	checkContiguous(t, evs, 2)
	_ = future
}

func TestCloseHubEndsStreams(t *testing.T) {
	f := newFakeStore()
	h := NewHub(f, nil, Options{})
	s := h.NewStream()
	mustWatch(t, s, WatchRequest{Key: []byte("k"), StartRev: 1})
	h.Close()
	if _, err := s.Next(context.Background()); err != ErrClosed {
		t.Fatalf("Next after hub close: %v", err)
	}
	if h.WatcherCount() != 0 {
		t.Fatal("watchers left")
	}
}

func TestGroupStab(t *testing.T) {
	g := newGroup()
	mk := func(k, e string, fromKey bool) *watcher {
		w := &watcher{key: []byte(k), fromKey: fromKey}
		if e != "" {
			w.end = []byte(e)
		}
		g.add(w)
		return w
	}
	ws := []*watcher{mk("a", "z", false), mk("b", "c", false), mk("m", "", true), mk("d", "e", false), mk("x", "", false), mk("ba", "bb", false)}
	for _, k := range []string{"", "a", "b", "ba", "bz", "c", "d", "m", "x", "zz", "\xff"} {
		want := 0
		for _, w := range ws {
			if contains(w.key, w.end, w.fromKey, []byte(k)) {
				want++
			}
		}
		got := 0
		g.stab([]byte(k), func(*watcher) { got++ })
		if got != want {
			t.Fatalf("stab(%q) = %d watchers, want %d", k, got, want)
		}
	}
	for _, w := range ws {
		if !g.delete(w) {
			t.Fatal("delete")
		}
	}
	if g.size() != 0 || len(g.ranges) != 0 || len(g.keys) != 0 {
		t.Fatal("group not empty")
	}
}

func TestResync(t *testing.T) {
	f, h := newTestHub(t, Options{})
	s := h.NewStream()
	id := mustWatch(t, s, WatchRequest{Key: []byte("k")})
	// Revisions the hub never hears of (a snapshot was installed).
	f.mu.Lock()
	f.notify = nil
	f.mu.Unlock()
	f.put("k", "1")
	f.put("k", "2")
	f.mu.Lock()
	f.notify = h.Notify
	f.mu.Unlock()
	h.Resync()
	f.put("k", "3")
	evs, _ := collect(t, s, id, 3)
	checkContiguous(t, evs, 2)
}

// waitDispatched waits, bounded, until the hub's dispatcher has handled
// every revision up to rev.
func waitDispatched(t *testing.T, h *Hub, rev int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.Rev() < rev {
		if time.Now().After(deadline) {
			t.Fatalf("dispatcher stuck at revision %d, want %d", h.Rev(), rev)
		}
		runtime.Gosched()
	}
}

// With no watcher, Notify queues nothing and does not wake the dispatcher;
// a watcher created afterwards still starts right after the store's
// revision, is ready at once (a progress request is answered with the
// revisions Notify passed over, without waiting for another write), and
// gets every later event. Writes racing with the creation of watchers lose
// nothing either.
func TestNotifyWithoutWatchersIsIdle(t *testing.T) {
	f, h := newTestHub(t, Options{})
	for i := 0; i < 5; i++ {
		f.put("k", fmt.Sprint(i)) // revisions 2..6
	}
	h.pendMu.Lock()
	queued, idle := len(h.pending), h.idleRev
	h.pendMu.Unlock()
	if queued != 0 || idle != 6 {
		t.Fatalf("with no watcher: %d revisions queued, idle revision %d; want 0 and 6", queued, idle)
	}
	if got := h.Rev(); got != 6 {
		t.Fatalf("hub revision %d, want 6", got)
	}
	s := h.NewStream()
	id := mustWatch(t, s, WatchRequest{Key: []byte("k")})
	if err := s.RequestProgress(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, s); r.WatchID != InvalidWatchID || r.Revision != 6 || len(r.Events) != 0 {
		t.Fatalf("want progress -1 at 6, got %+v", r)
	}
	f.put("k", "x") // 7
	evs, _ := collect(t, s, id, 1)
	checkContiguous(t, evs, 7)

	// Watchers come and go while another goroutine writes: each sees every
	// revision after its creation's.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 300; i++ {
			f.put("r", fmt.Sprint(i))
		}
	}()
	for i := 0; i < 30; i++ {
		ws := h.NewStream()
		wid := mustWatch(t, ws, WatchRequest{Key: []byte("r")})
		from := f.Rev() // the watcher's start is at most this revision + 1
		f.put("r", "mine")
		evs, _ := collect(t, ws, wid, 1)
		if evs[0].Kv.ModRevision > from+1 {
			// Events between creation and the first one received would
			// have been skipped: the first must be the creation's next.
			t.Fatalf("watcher %d: first event at %d, created at or before %d", i, evs[0].Kv.ModRevision, from)
		}
		ws.Close()
	}
	<-done
	// Every way a watcher ends uncounts it: cancel, a compacted start, close.
	cs := h.NewStream()
	if _, err := cs.Watch(context.Background(), WatchRequest{Key: []byte("r"), StartRev: 1}); err != nil {
		t.Fatal(err)
	}
	f.compactTo(f.Rev())
	if _, err := cs.Watch(context.Background(), WatchRequest{Key: []byte("r"), StartRev: 2}); err != nil {
		t.Fatal(err) // refused with a compaction cancel, never counted
	}
	if ok, err := s.Cancel(context.Background(), id); !ok || err != nil {
		t.Fatalf("cancel: %v %v", ok, err)
	}
	cs.Close()
	if n := h.watchers.Load(); n != 0 {
		t.Fatalf("%d watchers counted after all ended", n)
	}
	rev := f.put("k", "idle again")
	h.pendMu.Lock()
	// (Earlier revisions may still wait for the dispatcher.)
	queuedLast := len(h.pending) > 0 && h.pending[len(h.pending)-1].rev == rev
	idle = h.idleRev
	h.pendMu.Unlock()
	if queuedLast || idle != rev {
		t.Fatalf("after all watchers ended: revision %d queued %v, idle revision %d", rev, queuedLast, idle)
	}
}
