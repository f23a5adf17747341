package txn

import (
	"fmt"
	"path/filepath"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
	"github.com/metastore/metastore/internal/storage/pebble"
)

func benchEngines(b *testing.B, fn func(b *testing.B, eng storage.Engine)) {
	b.Run("memory", func(b *testing.B) {
		eng := memory.New()
		defer eng.Close()
		fn(b, eng)
	})
	b.Run("pebble", func(b *testing.B) {
		eng, err := pebble.Open(filepath.Join(b.TempDir(), "db"), pebble.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		defer eng.Close()
		fn(b, eng)
	})
}

func benchSetup(b *testing.B, eng storage.Engine) (*mvcc.Store, *Executor) {
	s, err := mvcc.Open(eng, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s, New(s, nil, nil)
}

func benchWrite(b *testing.B, eng storage.Engine, s *mvcc.Store, fn func(w *mvcc.Writer) error) {
	batch := eng.NewBatch()
	defer batch.Close()
	w := s.NewWriter(batch)
	if err := fn(w); err != nil {
		b.Fatal(err)
	}
	if err := w.Finish(); err != nil {
		b.Fatal(err)
	}
	if err := batch.Commit(false); err != nil {
		b.Fatal(err)
	}
	w.Commit()
}

func BenchmarkPut(b *testing.B) {
	benchEngines(b, func(b *testing.B, eng storage.Engine) {
		s, ex := benchSetup(b, eng)
		val := make([]byte, 256)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			r := &pb.PutRequest{Key: []byte(fmt.Sprintf("key%07d", i%10000)), Value: val}
			benchWrite(b, eng, s, func(w *mvcc.Writer) error { _, _, err := ex.Put(w, r); return err })
		}
	})
}

func fill(b *testing.B, eng storage.Engine, s *mvcc.Store, ex *Executor, n, versions int) {
	val := make([]byte, 256)
	for v := 0; v < versions; v++ {
		for i := 0; i < n; i += 100 {
			benchWrite(b, eng, s, func(w *mvcc.Writer) error {
				for j := i; j < i+100 && j < n; j++ {
					if _, _, err := ex.Put(w, &pb.PutRequest{Key: []byte(fmt.Sprintf("key%07d", j)), Value: val}); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
}

func BenchmarkRange1(b *testing.B) {
	benchEngines(b, func(b *testing.B, eng storage.Engine) {
		s, ex := benchSetup(b, eng)
		fill(b, eng, s, ex, 10000, 3)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			resp, err := ex.Range(bg, &pb.RangeRequest{Key: []byte(fmt.Sprintf("key%07d", i%10000))})
			if err != nil || len(resp.Kvs) != 1 {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRange100(b *testing.B) {
	benchEngines(b, func(b *testing.B, eng storage.Engine) {
		s, ex := benchSetup(b, eng)
		fill(b, eng, s, ex, 10000, 3)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := (i * 100) % 9900
			resp, err := ex.Range(bg, &pb.RangeRequest{Key: []byte(fmt.Sprintf("key%07d", start)), RangeEnd: []byte(fmt.Sprintf("key%07d", start+100))})
			if err != nil || len(resp.Kvs) != 100 {
				b.Fatal(err, len(resp.Kvs))
			}
		}
	})
}

// BenchmarkTxn: a k8s-style guarded update (compare mod revision, put,
// else get) through a Writer.
func BenchmarkTxn(b *testing.B) {
	benchEngines(b, func(b *testing.B, eng storage.Engine) {
		s, ex := benchSetup(b, eng)
		fill(b, eng, s, ex, 1000, 1)
		val := make([]byte, 256)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k := []byte(fmt.Sprintf("key%07d", i%1000))
			r := &pb.TxnRequest{
				Compare: []*pb.Compare{{Key: k, Target: pb.Compare_MOD, Result: pb.Compare_GREATER, TargetUnion: &pb.Compare_ModRevision{ModRevision: 0}}},
				Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: k, Value: val}}}},
				Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: k}}}},
			}
			benchWrite(b, eng, s, func(w *mvcc.Writer) error { _, _, err := ex.Txn(w, r); return err })
		}
	})
}
