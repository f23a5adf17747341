package raftwal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// TestConcurrentUse runs the log as a member does: one goroutine saves
// (the Ready loop, with leader changes overwriting the uncommitted tail),
// one compacts up to the committed index (the apply loop), two read terms
// and entries (raft). Readers may see only the errors a concurrent save or
// compaction explains (raft.ErrCompacted, raft.ErrUnavailable), and every
// entry they read must be the one saved at its index and term. Run it
// with -race.
func TestConcurrentUse(t *testing.T) {
	l := mustOpen(t, vfs.NewMem(), "/wal", Options{SegmentBytes: 16 << 10, zeroAhead: 4 << 10})
	defer l.Close()

	var (
		committed atomic.Uint64 // entries at or below it are never overwritten
		done      = make(chan struct{})
		wg        sync.WaitGroup
		errs      = make(chan error, 4)
	)
	stopped := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}

	wg.Add(1)
	go func() { // the Ready loop
		defer wg.Done()
		defer close(done)
		rng := rand.New(rand.NewPCG(7, 0))
		term, last := uint64(1), uint64(0)
		for i := range 1500 {
			from := last + 1
			if c := committed.Load(); rng.IntN(20) == 0 && last > c {
				term++
				from = c + 1 + uint64(rng.IntN(int(last-c)))
			}
			n := 1 + rng.IntN(3)
			es := make([]*raftpb.Entry, n)
			for j := range es {
				es[j] = ent(from+uint64(j), term, payload(from+uint64(j), term, 50+rng.IntN(200)))
			}
			last = from + uint64(n) - 1
			if last > 10 {
				committed.Store(max(committed.Load(), last-10))
			}
			if err := l.Save(hs(term, committed.Load()), es, i%2 == 0); err != nil {
				report(fmt.Errorf("save %d: %w", i, err))
				return
			}
		}
	}()

	wg.Add(1)
	go func() { // the apply loop
		defer wg.Done()
		for i := 0; i < 1_000_000 && !stopped(); i++ {
			if c := committed.Load(); c > 0 && i%50 == 0 {
				if err := l.Compact(c); err != nil {
					report(fmt.Errorf("compact %d: %w", c, err))
					return
				}
			}
			runtime.Gosched()
		}
	}()

	var reads atomic.Int64
	for r := range 2 {
		wg.Add(1)
		go func() { // raft
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			for i := 0; i < 1_000_000 && !stopped(); i++ {
				lo, hi := l.FirstIndex(), l.LastIndex()+1
				if lo >= hi {
					runtime.Gosched()
					continue
				}
				if i%2 == 0 {
					lo += uint64(rng.IntN(int(hi - lo)))
				}
				es, err := l.Entries(lo, hi, uint64(rng.IntN(4096)))
				if errors.Is(err, raft.ErrCompacted) || errors.Is(err, raft.ErrUnavailable) {
					continue
				}
				if err != nil {
					report(fmt.Errorf("entries [%d, %d): %w", lo, hi, err))
					return
				}
				if len(es) == 0 {
					report(fmt.Errorf("entries [%d, %d): none", lo, hi))
					return
				}
				for k, e := range es {
					want := payload(lo+uint64(k), e.GetTerm(), 0)
					if e.GetIndex() != lo+uint64(k) || !strings.HasPrefix(string(e.Data), want+".") {
						report(fmt.Errorf("entries [%d, %d)[%d]: index %d term %d data %.20q", lo, hi, k, e.GetIndex(), e.GetTerm(), e.Data))
						return
					}
				}
				at := lo + uint64(rng.IntN(int(hi-lo)))
				if _, err := l.Term(at); err != nil && !errors.Is(err, raft.ErrCompacted) && !errors.Is(err, raft.ErrUnavailable) {
					report(fmt.Errorf("term %d: %w", at, err))
					return
				}
				reads.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ci, _ := l.Compacted()
	t.Logf("last index %d, compacted %d, %d segments, %d reads", l.LastIndex(), ci, len(l.segs), reads.Load())
	if ci == 0 {
		t.Error("nothing was compacted")
	}
}

// BenchmarkSave measures a synced Save of one 300-byte entry on the real
// file system (b.TempDir()): the Ready loop's cost per write, fdatasync
// included. "growing the file" turns the zeroing ahead off, for
// comparison: every fdatasync then also commits the file's new size.
func BenchmarkSave(b *testing.B) {
	for _, bc := range []struct {
		name      string
		zeroAhead int64
	}{
		{"zeroed ahead", 0},
		{"growing the file", 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := mustOpen(b, vfs.Default, b.TempDir(), Options{zeroAhead: bc.zeroAhead})
			defer l.Close()
			data := strings.Repeat("x", 300)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := range b.N {
				if err := l.Save(nil, []*raftpb.Entry{ent(uint64(i)+1, 1, data)}, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
