package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ackWriters are concurrent writers that put unique keys (value = key)
// and record every acknowledged put in acks.
type ackWriters struct {
	acks     *ackLog
	progress chan struct{} // a token after each acknowledged put
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// startWriters starts n writers putting prefix/w<i>/<seq> through c, each
// put bounded by 2s; stop them with Stop (also done at test cleanup).
func startWriters(t *testing.T, ctx context.Context, c *clientv3.Client, prefix string, n int) *ackWriters {
	w := &ackWriters{acks: &ackLog{revs: make(map[string]int64)}, progress: make(chan struct{}, 1), stop: make(chan struct{})}
	for i := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			var prevRev int64
			for seq := 0; ; seq++ {
				select {
				case <-w.stop:
					return
				default:
				}
				key := fmt.Sprintf("%sw%d/%06d", prefix, i, seq)
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				resp, err := c.Put(pctx, key, key)
				cancel()
				if err != nil {
					continue // outcome unknown: the key may or may not exist
				}
				w.acks.add(key, resp.Header.Revision, prevRev)
				prevRev = resp.Header.Revision
				select {
				case w.progress <- struct{}{}:
				default:
				}
			}
		}()
	}
	t.Cleanup(w.Stop)
	return w
}

// Stop stops the writers and waits for them.
func (w *ackWriters) Stop() {
	w.stopOnce.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// waitAcks waits for n more acknowledged writes, failing the test after
// timeout without progress.
func (w *ackWriters) waitAcks(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for range n {
		select {
		case <-w.progress:
		case <-deadline:
			t.Fatalf("writers made no progress for %v", timeout)
		}
	}
}
