package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/metastore/metastore/tests/framework"
)

// Issue 11: a watch stream whose client stops reading must not hold up
// writes or the other streams, and must lose nothing.

const (
	stallPuts     = 3000 // more responses than a stream may queue (1024), so the stalled watcher goes unsynced
	stallKeys     = 1000 // every key is written three times: prev_kv is checked on overwrites
	stallValueLen = 2 << 10
)

func stallValue(i int) string {
	return strings.Repeat(fmt.Sprintf("%05d", i), stallValueLen/5+1)[:stallValueLen]
}

// TestWatchStalledStreamDoesNotBlockWrites opens two watch streams on one
// gRPC connection whose flow-control windows are pinned at 64 KiB, on the
// same prefix with prev_kv. One stream is drained; the other is not read at
// all while 3000 puts of 2 KiB (6 MB, a hundred windows) are written. Every
// put must succeed and the drained stream must see every event while the
// other stalls; the stalled watcher must be counted as slow (etcd's
// etcd_debugging_mvcc_slow_watcher_total); and once the stalled stream is
// read again it must deliver every event, in revision order, with the right
// prev_kv, no gap and no duplicate. It passes against etcd too.
func TestWatchStalledStreamDoesNotBlockWrites(t *testing.T) {
	m, c, _ := setup(t, "--unsafe-no-fsync")
	ctx := relCtx(t, 3*time.Minute)

	// Pinned windows: grpc-go then stops growing them from its bandwidth
	// estimate, so the unread stream really stops after 64 KiB.
	conn, err := grpc.NewClient(strings.TrimPrefix(m.ClientURL, "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wc := pb.NewWatchClient(conn)
	open := func() pb.Watch_WatchClient {
		t.Helper()
		ws, err := wc.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
			Key: []byte("/stall/"), RangeEnd: []byte("/stall0"), PrevKv: true}}})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ws.Recv()
		if err != nil || !resp.Created {
			t.Fatalf("watch create: %v %v", resp, err)
		}
		return ws
	}
	stalled := open()
	live := open()
	base := mustPut(t, c, ctx, "/before", "x").Header.Revision

	liveDone := make(chan error, 1)
	go func() { liveDone <- readStallEvents(live, base, stallPuts) }()

	t0 := time.Now()
	for i := range stallPuts {
		if _, err := c.Put(ctx, fmt.Sprintf("/stall/%04d", i%stallKeys), stallValue(i)); err != nil {
			t.Fatalf("put %d while a watch stream stalls: %v", i, err)
		}
	}
	t.Logf("%d puts while a stream stalled: %v", stallPuts, time.Since(t0))
	select {
	case err := <-liveDone:
		if err != nil {
			t.Fatalf("the stream that kept reading: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the stream that kept reading did not get every event while the other stalled")
	}

	// The stalled watcher is unsynced now (its stream's queue filled); both
	// servers count it in the same gauge. Bounded poll: the dispatcher marks
	// it when the queue overflows, which happened during the puts.
	err = framework.WaitFor(30*time.Second, 50*time.Millisecond, func() (bool, error) {
		return relScrape(t, m.ClientURL).sum("etcd_debugging_mvcc_slow_watcher_total") >= 1, nil
	})
	if err != nil {
		t.Fatalf("etcd_debugging_mvcc_slow_watcher_total stayed 0 (%v): the unread stream never fell behind, so this test proves nothing", err)
	}

	t0 = time.Now()
	if err := readStallEvents(stalled, base, stallPuts); err != nil {
		t.Fatalf("the stalled stream, once read again: %v", err)
	}
	t.Logf("the stalled stream caught up in %v", time.Since(t0))
}

// readStallEvents reads n put events of the stall workload from ws: the
// i-th at revision base+1+i on key i%stallKeys with value i, and, from the
// second round of keys on, prev_kv holding the key's previous value.
func readStallEvents(ws pb.Watch_WatchClient, base int64, n int) error {
	next := 0
	for next < n {
		resp, err := ws.Recv()
		if err != nil {
			return fmt.Errorf("after %d of %d events: %w", next, n, err)
		}
		if resp.Canceled {
			return fmt.Errorf("after %d of %d events: canceled (compact revision %d): %s", next, n, resp.CompactRevision, resp.CancelReason)
		}
		for _, ev := range resp.Events {
			if next == n {
				return fmt.Errorf("more than %d events", n)
			}
			wantKey := fmt.Sprintf("/stall/%04d", next%stallKeys)
			switch {
			case ev.Type != mvccpb.PUT || string(ev.Kv.Key) != wantKey:
				return fmt.Errorf("event %d: %v %q, want PUT %q", next, ev.Type, ev.Kv.Key, wantKey)
			case ev.Kv.ModRevision != base+1+int64(next):
				return fmt.Errorf("event %d at revision %d, want %d (gap or duplicate)", next, ev.Kv.ModRevision, base+1+int64(next))
			case string(ev.Kv.Value) != stallValue(next):
				return fmt.Errorf("event %d: wrong value", next)
			}
			if next >= stallKeys {
				if ev.PrevKv == nil || string(ev.PrevKv.Value) != stallValue(next-stallKeys) {
					return fmt.Errorf("event %d: prev_kv does not hold the previous value", next)
				}
			} else if ev.PrevKv != nil {
				return fmt.Errorf("event %d: prev_kv on a new key", next)
			}
			next++
		}
	}
	return nil
}
