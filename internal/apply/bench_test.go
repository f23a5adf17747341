package apply

import (
	"context"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/clock"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
)

// The benchmarks below measure the apply path itself (decode the committed
// entry, execute it on MVCC, stage the applied index, commit the engine
// batch without sync, wake the waiter) on both engines, with 64 entries per
// batch as a busy Raft Ready delivers them. Raft persistence (the fsync) is
// not part of it: bench/compare.sh measures the whole server against etcd.

func engines(b *testing.B) map[string]func() storage.Engine {
	return map[string]func() storage.Engine{
		"memory": func() storage.Engine { return memory.New() },
		"pebble": func() storage.Engine {
			e, err := pebbleengine.Open(b.TempDir(), pebbleengine.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = e.Close() })
			return e
		},
	}
}

const benchBatch = 64

func runBatches(b *testing.B, r *leaseRig, mk func(i int) *pb.InternalRaftRequest) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += benchBatch {
		reqs := make([]*pb.InternalRaftRequest, 0, benchBatch)
		for j := 0; j < benchBatch && i+j < b.N; j++ {
			reqs = append(reqs, mk(i+j))
		}
		for _, res := range r.applyAll(b, reqs...) {
			if res.Err != nil {
				b.Fatal(res.Err)
			}
		}
	}
}

var benchValue = make([]byte, 256)

// paths runs bench for an applier that decodes every entry (a follower)
// and for one that applies the proposer's requests (the leader).
func paths(b *testing.B, bench func(b *testing.B, kept bool)) {
	for _, kept := range []bool{false, true} {
		name := "decoded"
		if kept {
			name = "proposed"
		}
		b.Run(name, func(b *testing.B) { bench(b, kept) })
	}
}

func BenchmarkApplyPut(b *testing.B) {
	for name, open := range engines(b) {
		b.Run(name, func(b *testing.B) {
			paths(b, func(b *testing.B, kept bool) {
				r := newLeaseRig(b, open(), clock.NewFake())
				r.kept = kept
				runBatches(b, r, func(i int) *pb.InternalRaftRequest {
					return &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(fmt.Sprintf("key-%09d", i%100000)), Value: benchValue}}
				})
			})
		})
	}
}

func BenchmarkApplyTxn(b *testing.B) {
	for name, open := range engines(b) {
		b.Run(name, func(b *testing.B) {
			paths(b, func(b *testing.B, kept bool) {
				r := newLeaseRig(b, open(), clock.NewFake())
				r.kept = kept
				runBatches(b, r, func(i int) *pb.InternalRaftRequest {
					key := []byte(fmt.Sprintf("key-%09d", i%100000))
					// Kubernetes' create: put if the key does not exist yet.
					return &pb.InternalRaftRequest{Txn: &pb.TxnRequest{
						Compare: []*pb.Compare{{Key: key, Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: 0}}},
						Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key, Value: benchValue}}}},
						Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: key}}}},
					}}
				})
			})
		})
	}
}

// BenchmarkRangeAfterApply reads single keys from a store filled through the
// apply path (the read path does not go through Raft).
func BenchmarkRangeAfterApply(b *testing.B) {
	for name, open := range engines(b) {
		b.Run(name, func(b *testing.B) {
			r := newLeaseRig(b, open(), clock.NewFake())
			const keys = 10000
			for i := 0; i < keys; i += benchBatch {
				var reqs []*pb.InternalRaftRequest
				for j := i; j < i+benchBatch && j < keys; j++ {
					reqs = append(reqs, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(fmt.Sprintf("key-%09d", j)), Value: benchValue}})
				}
				r.applyAll(b, reqs...)
			}
			ex := r.a.cfg.Executor
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := ex.Range(context.Background(), &pb.RangeRequest{Key: []byte(fmt.Sprintf("key-%09d", i%keys))})
				if err != nil || len(resp.Kvs) != 1 {
					b.Fatalf("range: %v %v", resp, err)
				}
			}
		})
	}
}
