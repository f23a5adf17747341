package transport

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// countingRaft counts steps and signals progress.
type countingRaft struct {
	fakeRaft
	n    atomic.Int64
	tick chan struct{}
}

func (c *countingRaft) Step(context.Context, *raftpb.Message) error {
	c.n.Add(1)
	select {
	case c.tick <- struct{}{}:
	default:
	}
	return nil
}

// BenchmarkTransportMessages measures one stream's throughput over
// loopback: small MsgApps (one 128-byte entry) with at most a window in
// flight, as raft's own flow control would keep it.
func BenchmarkTransportMessages(b *testing.B) {
	recv := &countingRaft{fakeRaft: *newFakeRaft(), tick: make(chan struct{}, 1)}
	a := newBenchEndpoint(b, 1, nil)
	r := newBenchEndpoint(b, 2, recv)
	if err := a.tr.AddPeer(2, []string{r.url}); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 128)
	const window, chunk = 2048, 256
	msgs := make([]*raftpb.Message, chunk)
	for i := range msgs {
		msgs[i] = appendMsg(1, 2, uint64(i), data)
	}
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for sent < b.N {
		for int64(sent)-recv.n.Load() > window {
			select {
			case <-recv.tick:
			case <-time.After(10 * time.Second):
				b.Fatalf("stalled: %d sent, %d received, %+v", sent, recv.n.Load(), a.tr.Stats())
			}
		}
		k := min(chunk, b.N-sent)
		a.tr.Send(msgs[:k])
		sent += k
	}
	for recv.n.Load() < int64(b.N) {
		select {
		case <-recv.tick:
		case <-time.After(10 * time.Second):
			b.Fatalf("stalled at the end: %d of %d received, %+v", recv.n.Load(), b.N, a.tr.Stats())
		}
	}
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	if d := a.tr.Stats().DroppedMessages; d != 0 {
		b.Fatalf("%d messages dropped", d)
	}
}

func newBenchEndpoint(b *testing.B, id uint64, r Raft) *endpoint {
	f := newFakeRaft()
	if r == nil {
		r = f
	}
	tr := New(Config{LocalID: id, ClusterID: 0xc1, Raft: r})
	srv := newPeerServer(tr)
	b.Cleanup(srv.Close)
	b.Cleanup(tr.Stop)
	return &endpoint{tr: tr, raft: f, url: srv.URL}
}

// BenchmarkClusterCommit proposes on the leader of a 3-member cluster from
// concurrent clients and measures the latency from Propose to the entry
// being applied on the leader, and the messages the transports carried.
func BenchmarkClusterCommit(b *testing.B) {
	for _, clients := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			var mu sync.Mutex
			waiters := map[string]chan struct{}{}
			c := newCluster(b, 3, func(id uint64, e *raftpb.Entry) {
				mu.Lock()
				w := waiters[string(e.Data)]
				delete(waiters, string(e.Data))
				mu.Unlock()
				if w != nil {
					close(w)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			lead := c.waitLeader(ctx)
			node := c.members[lead].node
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var sentBefore uint64
			for _, m := range c.members {
				sentBefore += m.tr.Stats().SentMessages
			}
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						key := fmt.Sprintf("p%d", i)
						done := make(chan struct{})
						mu.Lock()
						waiters[key] = done
						mu.Unlock()
						t0 := time.Now()
						if err := node.Propose(ctx, []byte(key)); err != nil {
							b.Error(err)
							return
						}
						select {
						case <-done:
							lat[i] = time.Since(t0)
						case <-ctx.Done():
							b.Error("proposal not applied")
							return
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			var sent uint64
			for _, m := range c.members {
				sent += m.tr.Stats().SentMessages
			}
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/el.Seconds(), "commits/s")
			b.ReportMetric(float64(sent-sentBefore)/el.Seconds(), "msgs/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
