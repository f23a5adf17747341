package mvcc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// TestCompactionHashesAsItRemoves: the hash a compaction records while its
// removal pass walks the versions (batches that end inside a key's versions,
// a previous compaction, tombstones at and below both compaction revisions,
// keys created after the compaction revision) is the HashKV the store
// answered for that revision before the compaction began.
func TestCompactionHashesAsItRemoves(t *testing.T) {
	for _, limit := range []int{1, 3, 1000} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("batch%d/seed%d", limit, seed), func(t *testing.T) {
				s, _ := newStore(t, WithCompactionBatchLimit(limit))
				r := rand.New(rand.NewPCG(seed, 7))
				write := func(n int) {
					for range n {
						k := fmt.Sprintf("k%02d", r.IntN(30))
						if r.IntN(4) == 0 {
							del(t, s, k, "")
						} else {
							put(t, s, k, fmt.Sprint(r.Uint64()))
						}
					}
				}
				write(150)
				prev := s.Rev() - 20
				waitDone(t, compact(t, s, prev))
				write(150)
				rev := s.Rev() - 30
				want, err := s.HashByRev(context.Background(), rev)
				if err != nil {
					t.Fatal(err)
				}
				if want.CompactRevision != prev {
					t.Fatalf("HashKV before the compaction starts from %d, want %d", want.CompactRevision, prev)
				}
				waitDone(t, compact(t, s, rev))
				got := mustRecorded(t, s, rev)
				if got.hash != want.Hash || got.prev != prev {
					t.Fatalf("recorded hash %x from %d, want %x from %d", got.hash, got.prev, want.Hash, prev)
				}
				after, err := s.HashByRev(context.Background(), rev)
				if err != nil || after != want {
					t.Fatalf("HashKV(%d) after the compaction: %+v %v, want %+v", rev, after, err, want)
				}
			})
		}
	}
}

// TestPauseForBoundsTheDutyCycle: the compactor rests at least the
// configured interval and at least restPerWork (6) times as long as the
// batch worked, or restPerWorkBehind (1) times while a newer compaction
// waits; 0 means no pause, as in etcd.
func TestPauseForBoundsTheDutyCycle(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		interval, worked time.Duration
		behind           bool
		want             time.Duration
	}{
		{10 * ms, 25 * ms, false, 150 * ms},
		{10 * ms, 1 * ms, false, 10 * ms},
		{10 * ms, 2 * ms, false, 12 * ms},
		{10 * ms, 0, false, 10 * ms},
		{10 * ms, 25 * ms, true, 25 * ms},
		{10 * ms, 2 * ms, true, 10 * ms},
		{0, 25 * ms, false, 0},
		{0, 25 * ms, true, 0},
		{-1, 25 * ms, false, 0},
	} {
		if got := pauseFor(c.interval, c.worked, c.behind); got != c.want {
			t.Errorf("pauseFor(%v, %v, behind %v) = %v, want %v", c.interval, c.worked, c.behind, got, c.want)
		}
	}
}

// TestCompactorIsBehindWhileANewerCompactionWaits: the compactor counts as
// behind (and rests less) exactly while a compaction is queued behind the
// one it runs.
func TestCompactorIsBehindWhileANewerCompactionWaits(t *testing.T) {
	// One revision per batch and an hour's rest: the first compaction is
	// still running when the second is requested.
	s, _ := newStore(t, WithCompactionBatchLimit(1), WithCompactionSleepInterval(time.Hour))
	for i := range 6 {
		put(t, s, "k", fmt.Sprint(i))
	}
	c := s.comp.Load()
	compact(t, s, 3)
	if c.behind() {
		t.Fatal("behind with one compaction requested")
	}
	compact(t, s, 5)
	if !c.behind() {
		t.Fatal("not behind with a second compaction queued behind the running one")
	}
}

// TestCompactionYieldsAsItReads: within one batch (the default 1000
// revisions), the compactor yields its processor every yieldVersions
// versions it reads, so that goroutines queued behind it do not wait for
// the batch to end or for Go's 10 ms preemption.
func TestCompactionYieldsAsItReads(t *testing.T) {
	s, _ := newStore(t)
	const keys = 200
	for i := range keys {
		put(t, s, fmt.Sprintf("k%03d", i), "a")
		put(t, s, fmt.Sprintf("k%03d", i), "b")
	}
	var yields atomic.Int64
	// Set before the job is queued: the compactor reads it only while
	// compacting, after the queue's lock.
	s.comp.Load().yielder.gosched = func() { yields.Add(1) }
	waitDone(t, compact(t, s, s.Rev()))
	if got, want := yields.Load(), int64(2*keys/yieldVersions); got < want {
		t.Fatalf("the compactor yielded %d times over %d versions, want at least %d", got, 2*keys, want)
	}
}

// TestHashGivesUpWithItsContext: HashKV gives up with its caller's context
// error while it waits for a running compaction's hash (this compactor
// rests an hour after its first batch, so the hash would come only then)
// and while it scans, and so does the whole-store Hash.
func TestHashGivesUpWithItsContext(t *testing.T) {
	s, _ := newStore(t, WithCompactionBatchLimit(1), WithCompactionSleepInterval(time.Hour))
	for i := range 3 * yieldVersions {
		put(t, s, fmt.Sprintf("k%02d", i%4), fmt.Sprint(i))
	}
	rev := s.Rev()
	compact(t, s, rev)
	put(t, s, "after", "x")

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := s.HashByRev(ctx, rev)
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("HashByRev(%d) while the compaction rests: %v, want context.Canceled", rev, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("HashByRev kept waiting for the compaction after its context ended")
	}

	// The scans: at the current revision nothing is waited for, and more
	// than yieldVersions records are read, so the scan looks at ctx.
	if _, err := s.HashByRev(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("HashByRev(0) with an ended context: %v, want context.Canceled", err)
	}
	if _, err := s.Hash(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with an ended context: %v, want context.Canceled", err)
	}
	h, err := s.HashByRev(context.Background(), 0)
	if err != nil || h.CompactRevision != rev || h.HashRevision != rev+1 {
		t.Fatalf("HashByRev(0) = %+v, %v; want compact revision %d, hash revision %d", h, err, rev, rev+1)
	}
}
