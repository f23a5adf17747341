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
		core, logs := observer.New(zap.InfoLevel)
		e, err := Open(filepath.Join(b.TempDir(), "db"), Options{Logger: zap.New(core)})
		if err != nil {
			b.Fatal(err)
		}
		rnd := rand.New(rand.NewPCG(1, 2))
		pool := make([]byte, 16<<20)
		for i := range pool {
			pool[i] = byte(rnd.Uint32())
		}
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
				d := e.NewBatch()
				if err := d.DeleteRange(storage.RaftEntryKey(1), storage.RaftEntryKey(index-catchUp+1)); err != nil {
					b.Fatal(err)
				}
				if err := d.Commit(false); err != nil {
					b.Fatal(err)
				}
				d.Close()
			}
		}
		elapsed := time.Since(start)
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
		b.ReportMetric(float64(m.BlobFiles.ValueSize-m.BlobFiles.ReferencedValueSize)/float64(m.BlobFiles.ValueSize), "blob-garbage")
		b.ReportMetric(float64(m.Total().TablesCount), "tables")
		b.ReportMetric(float64(m.BlobFiles.LiveCount), "blobs")
		b.ReportMetric(float64(logs.FilterMessage("pebble: write stall").Len()), "stalls")
		if testing.Verbose() {
			fmt.Fprintf(os.Stderr, "%d txns in %v\n%s\n", index, elapsed, m)
		}
		if err := e.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
