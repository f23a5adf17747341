package e2e

import (
	"context"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// eventsString renders watch events as value@mod_revision, with
// "prev value@mod_revision" when the event carries prev_kv.
func eventsString(evs []*clientv3.Event) string {
	var s string
	for _, e := range evs {
		if e.Type == mvccpb.DELETE {
			s += fmt.Sprintf("DELETE@%d", e.Kv.ModRevision)
		} else {
			s += fmt.Sprintf("%s@%d", e.Kv.Value, e.Kv.ModRevision)
		}
		if e.PrevKv != nil {
			s += fmt.Sprintf(" prev %s@%d", e.PrevKv.Value, e.PrevKv.ModRevision)
		}
		s += "; "
	}
	return s
}

// watchN reads events from wch until it has n, and returns the first n.
func watchN(t *testing.T, what string, wch clientv3.WatchChan, n int) []*clientv3.Event {
	t.Helper()
	var evs []*clientv3.Event
	for len(evs) < n {
		wr, ok := <-wch
		if !ok {
			t.Fatalf("%s: watch channel closed after %d events", what, len(evs))
		}
		if err := wr.Err(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		evs = append(evs, wr.Events...)
	}
	return evs[:n]
}

// prev_kv on watch events and put responses, through the real client: the
// server keeps only the metadata of keys' newest versions in memory, and
// reads a previous value when a request or a watcher asks for it (ADR 19).
// Every case is etcd's behaviour (the test passes against etcd-ref): live
// watchers with and without prev_kv, a key read before it is overwritten (a
// hot key, whose value the server caches) and one that is not, deletes, and
// replays from history after a compaction: the prev_kv of an event is there
// while the revision before it is not compacted, and omitted once it is.
func TestWatchPrevKVLiveAndAfterCompaction(t *testing.T) {
	_, c, ctx := setup(t)
	// Both watchers start right after the current revision, so they see
	// every write below however late the server registers them.
	start := mustGet(t, c, ctx, "k").Header.Revision + 1
	withPrev := c.Watch(ctx, "k", clientv3.WithRev(start), clientv3.WithPrevKV())
	plain := c.Watch(ctx, "k", clientv3.WithRev(start))

	r1 := mustPut(t, c, ctx, "k", "v1").Header.Revision // create
	r2 := mustPut(t, c, ctx, "k", "v2").Header.Revision // overwrite of a key nobody read
	p := mustPut(t, c, ctx, "k", "v3", clientv3.WithPrevKV())
	r3 := p.Header.Revision
	if p.PrevKv == nil || string(p.PrevKv.Value) != "v2" || p.PrevKv.ModRevision != r2 || p.PrevKv.Version != 2 {
		t.Fatalf("put with prev_kv: prev %+v, want v2 at revision %d version 2", p.PrevKv, r2)
	}
	if g := mustGet(t, c, ctx, "k"); string(g.Kvs[0].Value) != "v3" { // the key is now read hot
		t.Fatalf("get k: %+v", g.Kvs)
	}
	r4 := mustPut(t, c, ctx, "k", "v4").Header.Revision
	if p := mustPut(t, c, ctx, "k", "v5", clientv3.WithPrevKV()); p.PrevKv == nil || string(p.PrevKv.Value) != "v4" || p.PrevKv.ModRevision != r4 {
		t.Fatalf("put with prev_kv of a hot key: prev %+v, want v4 at revision %d", p.PrevKv, r4)
	}
	r5 := r4 + 1
	d := mustDel(t, c, ctx, "k", clientv3.WithPrevKV())
	r6 := d.Header.Revision
	if len(d.PrevKvs) != 1 || string(d.PrevKvs[0].Value) != "v5" {
		t.Fatalf("delete with prev_kv: %+v", d.PrevKvs)
	}
	if p := mustPut(t, c, ctx, "k", "v7", clientv3.WithPrevKV()); p.PrevKv != nil {
		t.Fatalf("put after a delete carries prev %+v", p.PrevKv)
	}
	r7 := r6 + 1

	want := fmt.Sprintf("v1@%d; v2@%d prev v1@%d; v3@%d prev v2@%d; v4@%d prev v3@%d; v5@%d prev v4@%d; DELETE@%d prev v5@%d; v7@%d; ",
		r1, r2, r1, r3, r2, r4, r3, r5, r4, r6, r5, r7)
	if got := eventsString(watchN(t, "prev_kv watcher", withPrev, 7)); got != want {
		t.Fatalf("prev_kv watcher:\n got %s\nwant %s", got, want)
	}
	wantPlain := fmt.Sprintf("v1@%d; v2@%d; v3@%d; v4@%d; v5@%d; DELETE@%d; v7@%d; ", r1, r2, r3, r4, r5, r6, r7)
	if got := eventsString(watchN(t, "plain watcher", plain, 7)); got != wantPlain {
		t.Fatalf("plain watcher:\n got %s\nwant %s", got, wantPlain)
	}

	// Replays after a compaction at r2: the revision before r3 is r2, still
	// readable, so r3 keeps its prev_kv.
	if _, err := c.Compact(ctx, r2, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	replay := func(from int64, n int) string {
		t.Helper()
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		return eventsString(watchN(t, fmt.Sprintf("replay from %d", from), c.Watch(wctx, "k", clientv3.WithRev(from), clientv3.WithPrevKV()), n))
	}
	if got, want := replay(r3, 2), fmt.Sprintf("v3@%d prev v2@%d; v4@%d prev v3@%d; ", r3, r2, r4, r3); got != want {
		t.Fatalf("replay from %d after compacting at %d:\n got %s\nwant %s", r3, r2, got, want)
	}
	// After a compaction at r4 the revision before r4 (r3) is compacted:
	// the event at r4 comes without prev_kv, the next ones with it.
	if _, err := c.Compact(ctx, r4, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if got, want := replay(r4, 3), fmt.Sprintf("v4@%d; v5@%d prev v4@%d; DELETE@%d prev v5@%d; ", r4, r5, r4, r6, r5); got != want {
		t.Fatalf("replay from %d after compacting at %d:\n got %s\nwant %s", r4, r4, got, want)
	}
}
