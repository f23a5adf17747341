package watch

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// benchHub has watchers watchers on keys distinct keys (watchers/keys per
// key), spread over streams streams, each drained by a reader.
func benchHub(b *testing.B, watchers, keys, streams int, prefix bool) (*fakeStore, *Hub, *atomic.Int64, func()) {
	f := newFakeStore()
	h := NewHub(f, nil, Options{})
	var delivered atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ss := make([]*Stream, streams)
	for i := range ss {
		ss[i] = h.NewStream()
	}
	for _, s := range ss {
		wg.Add(1)
		go func(s *Stream) {
			defer wg.Done()
			for {
				r, err := s.Next(ctx)
				if err != nil {
					return
				}
				delivered.Add(int64(len(r.Events)))
			}
		}(s)
	}
	for i := 0; i < watchers; i++ {
		req := WatchRequest{Key: []byte(fmt.Sprintf("key%04d", i%keys)), PrevKV: i%2 == 0}
		if prefix {
			req.Key = []byte(fmt.Sprintf("key%04d/", i%keys))
			req.End = []byte(fmt.Sprintf("key%04d0", i%keys)) // prefix end of "key0001/"
		}
		if _, err := ss[i%streams].Watch(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	f.mu.Lock()
	f.notify = h.Notify
	f.mu.Unlock()
	return f, h, &delivered, func() {
		cancel()
		wg.Wait()
		h.Close()
	}
}

// BenchmarkNotify: the apply goroutine's cost per committed revision with
// 10,000 watchers on 1,000 keys, and how fast events reach the watchers.
func BenchmarkNotify(b *testing.B) {
	for _, prefix := range []bool{false, true} {
		b.Run(fmt.Sprintf("prefix=%v", prefix), func(b *testing.B) {
			const watchers, keys, streams = 10000, 1000, 100
			f, h, delivered, stop := benchHub(b, watchers, keys, streams, prefix)
			defer stop()
			var notifyNs atomic.Int64
			f.mu.Lock()
			f.notify = func(rev int64, evs []*mvccpb.Event) {
				t0 := time.Now()
				h.Notify(rev, evs)
				notifyNs.Add(int64(time.Since(t0)))
			}
			f.mu.Unlock()
			want := int64(b.N) * watchers / keys
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				k := fmt.Sprintf("key%04d", i%keys)
				if prefix {
					k += "/x"
				}
				f.put(k, "value-of-some-length")
			}
			for delivered.Load() < want {
				// Bounded by the benchmark's own timeout; yields to readers.
				time.Sleep(100 * time.Microsecond)
			}
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(notifyNs.Load())/float64(b.N), "ns/notify")
			b.ReportMetric(float64(want)/el.Seconds(), "events/s")
			b.ReportMetric(float64(f.reads.Load()), "history-reads")
			if st := h.Stats(); st.Synced+st.Unsynced != watchers {
				b.Fatalf("watchers lost: %+v", st)
			}
		})
	}
}
