package raftsnap

import (
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
)

// BenchmarkTransferAndInstall streams an image from one Pebble engine to
// another through a pipe, stages and installs it, and reports the peak heap
// growth. That includes Pebble's memtables and block cache (Go heap without
// cgo), but it must not grow with the image size.
func BenchmarkTransferAndInstall(b *testing.B) {
	for _, mib := range []int{32, 128} {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) { benchTransfer(b, mib<<10) })
	}
}

func benchTransfer(b *testing.B, keys int) {
	const valueSize = 1 << 10
	open := func(name string) storage.Engine {
		e, err := pebbleengine.Open(filepath.Join(b.TempDir(), name), pebbleengine.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = e.Close() })
		return e
	}
	src := open("src")
	batch := src.NewBatch()
	val := make([]byte, valueSize)
	for i := 0; i < keys; i++ {
		if err := batch.Set([]byte(fmt.Sprintf("k/%08d", i)), val); err != nil {
			b.Fatal(err)
		}
		if batch.Count() >= 4096 {
			if err := batch.Commit(false); err != nil {
				b.Fatal(err)
			}
			batch.Close()
			batch = src.NewBatch()
		}
	}
	if err := batch.Set(storage.KeyAppliedIndex, []byte(applied(1000, 2))); err != nil {
		b.Fatal(err)
	}
	if err := batch.Commit(true); err != nil {
		b.Fatal(err)
	}
	batch.Close()
	b.SetBytes(int64(keys) * valueSize)
	b.ResetTimer()
	var peak uint64
	for i := 0; i < b.N; i++ {
		dst := open(fmt.Sprintf("dst%d", i))
		log, err := raftlog.Open(dst)
		if err != nil {
			b.Fatal(err)
		}
		im, err := OpenImage(src)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		pr, pw := io.Pipe()
		go func() { _, err := im.WriteTo(pw); pw.CloseWithError(err) }()
		stop := make(chan struct{})
		sampled := make(chan uint64)
		go func() {
			var max uint64
			var ms runtime.MemStats
			for {
				select {
				case <-stop:
					sampled <- max
					return
				default:
				}
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > base.HeapAlloc && ms.HeapAlloc-base.HeapAlloc > max {
					max = ms.HeapAlloc - base.HeapAlloc
				}
				runtime.Gosched()
			}
		}()
		rc := NewReceiver(dst)
		md := proto.Clone(im.Meta).(*raftpb.SnapshotMetadata)
		if err := rc.Stage(pr, md); err != nil {
			b.Fatal(err)
		}
		if err := rc.Install(md, log); err != nil {
			b.Fatal(err)
		}
		close(stop)
		peak = max(peak, <-sampled)
		im.Close()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
