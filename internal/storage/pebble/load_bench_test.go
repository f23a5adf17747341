package pebble

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/internal/storage"
)

// BenchmarkLargeTxnLoad writes what a member applies under bench/scale's
// load (issue 11), scaled down to loadBytes: transactions of 100 versions
// of 1-10 KiB random values (with their h/ index entries) and, in the same
// batch, a Raft entry carrying them, as internal/apply and internal/raftlog
// write them; the log is truncated as --snapshot-count and
// --snapshot-catchup-entries do, scaled by the same factor as the data
// (10000 and 5000 entries at 8 GiB). It reports the bytes Pebble wrote per
// byte of MVCC data: WAL, flushes and compactions (tables and blob files),
// and the files left, and the disk used per byte of live data (the MVCC
// versions and the entries still in the log). Run it with -benchtime 1x.
func BenchmarkLargeTxnLoad(b *testing.B) {
	const (
		loadBytes    = 512 << 20 // a sixteenth of 8 GiB
		scale        = 16
		perTxn       = 100
		syncEveryTxn = 8 // one synced commit per Raft Ready of 8 clients' txns
	)
	snapCount, catchUp := uint64(10000/scale), uint64(5000/scale)
	for range b.N {
		e, logs, rnd, pool := openLoad(b, 16<<20)
		start := time.Now()
		var written, index, lastCompact uint64
		rev := uint64(1)
		entry := make([]byte, 0, 1<<20)
		for written < loadBytes {
			batch := e.NewBatch()
			entry = entry[:0]
			for range perTxn {
				n := 1<<10 + rnd.IntN(9<<10)
				off := rnd.IntN(len(pool) - n)
				v := pool[off : off+n]
				key := versionKey(fmt.Sprintf("registry/pods/ns-%03d/pod-%08d", rnd.IntN(100), rev), rev)
				if err := batch.Set(key, v); err != nil {
					b.Fatal(err)
				}
				if err := batch.Set(append([]byte("h/"), key[len(key)-16:]...), key[:len(key)-16]); err != nil {
					b.Fatal(err)
				}
				entry = append(entry, v...)
				written += uint64(n)
				rev++
			}
			index++
			if err := batch.Set(storage.RaftEntryKey(index), entry); err != nil {
				b.Fatal(err)
			}
			if err := batch.Commit(index%syncEveryTxn == 0); err != nil {
				b.Fatal(err)
			}
			batch.Close()
			if index-lastCompact >= snapCount {
				lastCompact = index
				truncateLog(b, e, index-catchUp)
			}
		}
		reportLoad(b, e, logs, written, time.Since(start), lastCompact, catchUp, index)
		if err := e.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSmallPutLoad writes what a member applies under the benchmark
// suite's puts (bench/compare.sh: 1000 clients, 8-byte keys, 256-byte
// values): single-put transactions, each a version, its h/ index entry and
// a ~300-byte Raft entry, 64 of them per synced commit (one Raft Ready),
// keys drawn from 100,000 so that every flush overlaps the whole of Lbase,
// and the log truncated every 10000 entries to the last 5000 (etcd's
// defaults). Values stay inline (below valueSepMinSize), so what Pebble's
// compactions rewrite is the tables themselves: compact/B is what the L0
// compaction threshold (pebbleOptions) trades against read amplification.
// Run it with -benchtime 1x.
func BenchmarkSmallPutLoad(b *testing.B) {
	const (
		loadBytes = 128 << 20
		valSize   = 256
		keySpace  = 100000
		perReady  = 64
	)
	snapCount, catchUp := uint64(10000), uint64(5000)
	for range b.N {
		e, logs, rnd, pool := openLoad(b, 1<<20)
		start := time.Now()
		var written, index, lastCompact uint64
		rev := uint64(1)
		entry := make([]byte, 0, 512)
		for written < loadBytes {
			batch := e.NewBatch()
			for range perReady {
				off := rnd.IntN(len(pool) - valSize)
				v := pool[off : off+valSize]
				key := versionKey(fmt.Sprintf("%08d", rnd.IntN(keySpace)), rev)
				if err := batch.Set(key, v); err != nil {
					b.Fatal(err)
				}
				if err := batch.Set(append([]byte("h/"), key[len(key)-16:]...), key[:len(key)-16]); err != nil {
					b.Fatal(err)
				}
				index++
				entry = append(append(entry[:0], key...), v...)
				if err := batch.Set(storage.RaftEntryKey(index), entry); err != nil {
					b.Fatal(err)
				}
				written += valSize
				rev++
			}
			if err := batch.Commit(true); err != nil {
				b.Fatal(err)
			}
			batch.Close()
			if index-lastCompact >= snapCount {
				lastCompact = index
				truncateLog(b, e, index-catchUp)
			}
		}
		reportLoad(b, e, logs, written, time.Since(start), lastCompact, catchUp, index)
		if err := e.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// openLoad opens a fresh store for a load benchmark, with its log observed
// for write stalls, and a pool of poolSize random (incompressible) bytes
// to cut values from.
func openLoad(b *testing.B, poolSize int) (*Engine, *observer.ObservedLogs, *rand.Rand, []byte) {
	b.Helper()
	core, logs := observer.New(zap.InfoLevel)
	e, err := Open(filepath.Join(b.TempDir(), "db"), Options{Logger: zap.New(core)})
	if err != nil {
		b.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	pool := make([]byte, poolSize)
	for i := range pool {
		pool[i] = byte(rnd.Uint32())
	}
	return e, logs, rnd, pool
}

// truncateLog removes the Raft entries up to and including last, as
// internal/raftlog's Compact does.
func truncateLog(b *testing.B, e *Engine, last uint64) {
	b.Helper()
	d := e.NewBatch()
	defer d.Close()
	if err := d.DeleteRange(storage.RaftEntryKey(1), storage.RaftEntryKey(last+1)); err != nil {
		b.Fatal(err)
	}
	if err := d.Commit(false); err != nil {
		b.Fatal(err)
	}
}

// reportLoad reports what Pebble wrote per byte of MVCC data written, the
// write rate, the disk used per byte of live data (the versions and the
// entries still in the log) and the files and stalls at the end of a load.
func reportLoad(b *testing.B, e *Engine, logs *observer.ObservedLogs, written uint64, elapsed time.Duration, lastCompact, catchUp, index uint64) {
	b.Helper()
	m := e.db.Metrics()
	var flushed, compacted uint64
	for i, l := range m.Levels {
		flushed += l.TableBytesFlushed + l.BlobBytesFlushed
		compacted += l.TableBytesCompacted
		if i > 0 { // Pebble counts a flush's blob files as compacted too
			compacted += l.BlobBytesCompacted
		}
	}
	w := float64(written)
	b.ReportMetric(float64(m.WAL.BytesWritten)/w, "wal/B")
	b.ReportMetric(float64(flushed)/w, "flush/B")
	b.ReportMetric(float64(compacted)/w, "compact/B")
	b.ReportMetric(float64(m.WAL.BytesWritten+flushed+compacted)/w, "total/B")
	b.ReportMetric(w/elapsed.Seconds()/1e6, "MB/s")
	var logBytes uint64 // the Raft entries still in the log
	first := uint64(1)
	if lastCompact > catchUp {
		first = lastCompact - catchUp + 1
	}
	for i := first; i <= index; i++ {
		v, err := e.Get(storage.RaftEntryKey(i))
		if err != nil {
			b.Fatal(err)
		}
		logBytes += uint64(len(v))
	}
	b.ReportMetric(float64(m.DiskSpaceUsage())/float64(written+logBytes), "disk/live")
	if m.BlobFiles.ValueSize > 0 {
		b.ReportMetric(float64(m.BlobFiles.ValueSize-m.BlobFiles.ReferencedValueSize)/float64(m.BlobFiles.ValueSize), "blob-garbage")
	}
	b.ReportMetric(float64(m.Total().TablesCount), "tables")
	b.ReportMetric(float64(m.BlobFiles.LiveCount), "blobs")
	b.ReportMetric(float64(logs.FilterMessage("pebble: write stall").Len()), "stalls")
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "%d entries in %v\n%s\n", index, elapsed, m)
	}
}
