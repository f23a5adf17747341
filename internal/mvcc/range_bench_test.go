package mvcc

import (
	"fmt"
	"testing"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/storage/pebble"
)

// rangeBenchKeys is the key space of the limited-range benchmarks: large
// enough that counting dominates a Limit=100 read, as with Kubernetes
// paginated lists over big prefixes.
const rangeBenchKeys = 200_000

// rangeBenchSetup loads rangeBenchKeys keys with 256-byte values into a
// Pebble store; then every 4th key gets two more versions and every 8th key
// is deleted, so counts must skip versions and tombstones. It returns the
// store and a revision at which every key existed with one version.
func rangeBenchSetup(b *testing.B) (*Store, int64) {
	b.Helper()
	eng, err := pebble.Open(b.TempDir(), pebble.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = eng.Close() })
	s, err := Open(eng, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	val := make([]byte, 256)
	key := func(i int) []byte { return []byte(fmt.Sprintf("/registry/pods/%08d", i)) }
	write := func(fn func(tw *TxnWrite)) {
		bt := eng.NewBatch()
		defer bt.Close()
		w := s.NewWriter(bt)
		tw := w.Begin()
		fn(tw)
		tw.End()
		if err := w.Finish(); err != nil {
			b.Fatal(err)
		}
		if err := bt.Commit(false); err != nil {
			b.Fatal(err)
		}
		w.Commit()
	}
	const perTxn = 1000
	for i := 0; i < rangeBenchKeys; i += perTxn {
		write(func(tw *TxnWrite) {
			for j := i; j < i+perTxn; j++ {
				tw.Put(key(j), val, 0)
			}
		})
	}
	old := s.Rev()
	for round := 0; round < 2; round++ {
		for i := 0; i < rangeBenchKeys; i += 4 * perTxn {
			write(func(tw *TxnWrite) {
				for j := i; j < i+4*perTxn; j += 4 {
					tw.Put(key(j), val, 0)
				}
			})
		}
	}
	for i := 0; i < rangeBenchKeys; i += 8 * perTxn {
		write(func(tw *TxnWrite) {
			for j := i; j < i+8*perTxn; j += 8 {
				tw.DeleteRange(key(j), nil)
			}
		})
	}
	return s, old
}

// BenchmarkRangeLimit100: Range over the whole key space with Limit=100
// (plus one, as txn asks, to learn "more"), which must still count every
// live key.
func BenchmarkRangeLimit100(b *testing.B) {
	s, old := rangeBenchSetup(b)
	for _, bc := range []struct {
		name string
		old  bool
		ro   RangeOptions
	}{
		{"current", false, RangeOptions{Limit: 101}},
		{"current/keysonly", false, RangeOptions{Limit: 101, KeysOnly: true}},
		{"current/countonly", false, RangeOptions{Count: true}},
		{"old", true, RangeOptions{Limit: 101}},
		{"old/keysonly", true, RangeOptions{Limit: 101, KeysOnly: true}},
		{"old/countonly", true, RangeOptions{Count: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ro := bc.ro
			want := rangeBenchKeys - rangeBenchKeys/8
			if bc.old {
				ro.Rev = old
				want = rangeBenchKeys
			}
			b.ReportAllocs()
			for b.Loop() {
				res, err := s.Range(ctx, []byte("/registry/"), []byte("/registry0"), ro)
				if err != nil {
					b.Fatal(err)
				}
				if res.Count != want {
					b.Fatalf("count %d, want %d", res.Count, want)
				}
			}
		})
	}
}
