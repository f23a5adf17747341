package enginetest

import (
	"fmt"
	"testing"

	"github.com/metastore/metastore/internal/storage"
)

// RunBenchmarks runs the standard engine benchmarks: committing a batch of
// one small key (with and without sync), Get of an existing key, and a
// forward scan of 1000 keys.
func RunBenchmarks(b *testing.B, open func(b *testing.B) storage.Engine) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("Commit1/sync=%v", sync), func(b *testing.B) {
			e := open(b)
			key := make([]byte, 0, 32)
			value := []byte("a-small-value-of-32-bytes-......")
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				key = fmt.Appendf(key[:0], "bench/%012d", i)
				batch := e.NewBatch()
				if err := batch.Set(key, value); err != nil {
					b.Fatal(err)
				}
				if err := batch.Commit(sync); err != nil {
					b.Fatal(err)
				}
				_ = batch.Close()
			}
		})
	}

	const n = 10000
	fill := func(b *testing.B) storage.Engine {
		e := open(b)
		batch := e.NewBatch()
		value := make([]byte, 100)
		for i := range n {
			if err := batch.Set(fmt.Appendf(nil, "bench/%012d", i), value); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Commit(false); err != nil {
			b.Fatal(err)
		}
		_ = batch.Close()
		return e
	}

	b.Run("Get", func(b *testing.B) {
		e := fill(b)
		key := make([]byte, 0, 32)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			key = fmt.Appendf(key[:0], "bench/%012d", (i*7919)%n)
			if _, err := e.Get(key); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("Scan1000", func(b *testing.B) {
		e := fill(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			start := (i * 7919) % (n - 1000)
			it, err := e.NewIter(storage.IterOptions{
				LowerBound: fmt.Appendf(nil, "bench/%012d", start),
				UpperBound: fmt.Appendf(nil, "bench/%012d", start+1000),
			})
			if err != nil {
				b.Fatal(err)
			}
			count := 0
			for ok := it.First(); ok; ok = it.Next() {
				count += len(it.Value())
			}
			_ = it.Close()
			if count != 1000*100 {
				b.Fatalf("scanned %d value bytes", count)
			}
		}
	})
}
