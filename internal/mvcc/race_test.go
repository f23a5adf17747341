package mvcc

import (
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentReadsDuringCompaction: readers at a revision >= the
// compaction revision always see the same answer while writes and physical
// compaction run concurrently (one key per batch, to interleave a lot).
func TestConcurrentReadsDuringCompaction(t *testing.T) {
	s, _ := newStore(t, WithCompactionBatchLimit(1))
	for i := 0; i < 50; i++ {
		for j := 0; j < 4; j++ {
			put(t, s, fmt.Sprintf("k%02d", i), fmt.Sprint(j))
		}
		if i%2 == 0 {
			del(t, s, fmt.Sprintf("k%02d", i), "")
		}
	}
	rev := s.Rev()
	want := kvString(rng(t, s, "k", "l", RangeOptions{Rev: rev}).KVs)
	done := compact(t, s, rev)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 200; n++ {
				res, err := s.Range(ctx, []byte("k"), []byte("l"), RangeOptions{Rev: rev})
				if err != nil {
					errs <- err
					return
				}
				if got := kvString(res.KVs); got != want {
					errs <- fmt.Errorf("read at %d changed during compaction:\n%s\n%s", rev, got, want)
					return
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		put(t, s, fmt.Sprintf("n%02d", i), "x")
	}
	wg.Wait()
	waitDone(t, done)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := kvString(rng(t, s, "k", "l", RangeOptions{Rev: rev}).KVs); got != want {
		t.Fatal("after compaction", got)
	}
}
