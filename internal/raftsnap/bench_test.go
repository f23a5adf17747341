package raftsnap

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
)

// BenchmarkTransferAndInstall streams an image from one Pebble engine to
// another through a pipe, stages and installs it, and reports the peak heap
// growth. That includes Pebble's memtables and block cache (Go heap without
// cgo), but it must not grow with the image size. It also reports the rate
// of each phase — reading the image alone (scan), receiving it into the
// staged files (stage: the scan, the pipe and the file writes at once) and
// installing it (the ingestion) — to show where a new member's catch-up
// time goes, and the bytes written to disk per image byte in each.
// RAFTSNAP_BENCH_MIB adds one more size (the issue 11 scale runs used 1024).
func BenchmarkTransferAndInstall(b *testing.B) {
	sizes := []int{32, 128}
	if v, err := strconv.Atoi(os.Getenv("RAFTSNAP_BENCH_MIB")); err == nil && v > 0 {
		sizes = append(sizes, v)
	}
	for _, mib := range sizes {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) { benchTransfer(b, mib<<10) })
	}
}

// benchSource is a Pebble engine holding keys pairs of 1 KiB random values
// (in blob files once compacted), with the applied index an image needs.
func benchSource(b *testing.B, keys int) storage.Engine {
	const valueSize = 1 << 10
	// Random values: zeros would compress to nothing in Pebble's blocks.
	pool := make([]byte, 16<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range pool {
		pool[i] = byte(rng.Uint32())
	}
	src := benchEngine(b, "src")
	batch := src.NewBatch()
	for i := 0; i < keys; i++ {
		off := rng.IntN(len(pool) - valueSize)
		if err := batch.Set([]byte(fmt.Sprintf("k/%08d", i)), pool[off:off+valueSize]); err != nil {
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
	// Let the load's flushes and compactions finish, so that the disk
	// writes counted below are the transfer's own.
	if err := src.CompactAll(context.Background()); err != nil {
		b.Fatal(err)
	}
	return src
}

func benchEngine(b *testing.B, name string) storage.Engine {
	e, err := pebbleengine.Open(filepath.Join(b.TempDir(), name), pebbleengine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	return e
}

// BenchmarkImageScan is the sender's side alone: an image of a 256 MiB
// store (RAFTSNAP_BENCH_MIB to change it) encoded into io.Discard, with the
// CPU time it takes per GB.
func BenchmarkImageScan(b *testing.B) {
	mib := 256
	if v, err := strconv.Atoi(os.Getenv("RAFTSNAP_BENCH_MIB")); err == nil && v > 0 {
		mib = v
	}
	src := benchSource(b, mib<<10)
	b.SetBytes(int64(mib) << 20)
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := 0; i < b.N; i++ {
		scanImage(b, src)
	}
	// The process's CPU time: Pebble's background work is idle once the
	// source is compacted.
	b.ReportMetric((cpuTime(b)-cpu0).Seconds()/(float64(b.N)*float64(mib<<20)/1e9), "cpu-s/GB")
}

// scanImage encodes an image of src into io.Discard.
func scanImage(b *testing.B, src storage.Engine) {
	im, err := OpenImage(src)
	if err != nil {
		b.Fatal(err)
	}
	defer im.Close()
	if _, err := im.WriteTo(io.Discard); err != nil {
		b.Fatal(err)
	}
}

// cpuTime is the user and system CPU time this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchTransfer(b *testing.B, keys int) {
	const valueSize = 1 << 10
	src := benchSource(b, keys)
	open := func(name string) storage.Engine { return benchEngine(b, name) }
	b.SetBytes(int64(keys) * valueSize)
	b.ResetTimer()
	var peak uint64
	var scan, stage, install time.Duration
	var stageW, installW int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		t0 := time.Now()
		scanImage(b, src)
		scan += time.Since(t0)
		b.StartTimer()
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
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(sample)
		base := sample[0].Value.Uint64()
		pr, pw := io.Pipe()
		// The labels split a CPU profile (-cpuprofile) into the sender's
		// and the receiver's work.
		go pprof.Do(context.Background(), pprof.Labels("side", "send"), func(context.Context) {
			_, err := im.WriteTo(pw)
			pw.CloseWithError(err)
		})
		stop := make(chan struct{})
		sampled := make(chan uint64)
		go func() {
			// Sampled every millisecond through runtime/metrics, which does
			// not stop the world: a loop of runtime.ReadMemStats took most
			// of a core from the transfer it measured.
			sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			var max uint64
			for {
				metrics.Read(sample)
				if h := sample[0].Value.Uint64(); h > base && h-base > max {
					max = h - base
				}
				select {
				case <-stop:
					sampled <- max
					return
				case <-tick.C:
				}
			}
		}()
		rc := NewReceiver(dst, filepath.Join(b.TempDir(), fmt.Sprintf("staging%d", i)))
		md := proto.Clone(im.Meta).(*raftpb.SnapshotMetadata)
		t0 = time.Now()
		w0 := writeBytes(b)
		var stageErr error
		pprof.Do(context.Background(), pprof.Labels("side", "receive"), func(context.Context) {
			stageErr = rc.Stage(pr, md)
		})
		if stageErr != nil {
			b.Fatal(stageErr)
		}
		stage += time.Since(t0)
		w1 := writeBytes(b)
		t0 = time.Now()
		if err := rc.Install(md, log); err != nil {
			b.Fatal(err)
		}
		install += time.Since(t0)
		w2 := writeBytes(b)
		stageW += w1 - w0
		installW += w2 - w1
		close(stop)
		peak = max(peak, <-sampled)
		im.Close()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	rate := func(d time.Duration) float64 { return float64(b.N) * float64(keys) * valueSize / 1e6 / d.Seconds() }
	b.ReportMetric(rate(scan), "scan-MB/s")
	b.ReportMetric(rate(stage), "stage-MB/s")
	b.ReportMetric(rate(install), "install-MB/s")
	// Bytes this process had the kernel write to disk per image byte.
	amp := func(w int64) float64 { return float64(w) / (float64(b.N) * float64(keys) * valueSize) }
	b.ReportMetric(amp(stageW), "stage-disk-bytes/B")
	b.ReportMetric(amp(installW), "install-disk-bytes/B")
}

// writeBytes is what this process has caused to be written to storage so
// far (write_bytes of /proc/self/io, Linux).
func writeBytes(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Fatalf("no /proc/self/io: %v", err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no write_bytes in /proc/self/io")
	return 0
}
