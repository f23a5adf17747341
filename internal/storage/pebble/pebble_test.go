package pebble

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/enginetest"
)

// testOptions keep the test engines small: many are open at once.
var testOptions = Options{CacheSize: 8 << 20, MemTableSize: 4 << 20}

func openAt(t *testing.T, dir string, opts Options) *Engine {
	t.Helper()
	e, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return e
}

func TestConformance(t *testing.T) {
	enginetest.RunSuite(t, enginetest.Suite{
		Open: func(t *testing.T) storage.Engine {
			return openAt(t, filepath.Join(t.TempDir(), "db"), testOptions)
		},
		OpenCheckpoint: func(t *testing.T, dir string) storage.Engine {
			return openAt(t, dir, testOptions)
		},
	})
}

func TestConformanceNoSync(t *testing.T) {
	opts := testOptions
	opts.NoSync = true
	enginetest.Run(t, func(t *testing.T) storage.Engine {
		return openAt(t, filepath.Join(t.TempDir(), "db"), opts)
	})
}

func TestReopenKeepsSyncedData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	for _, opts := range []Options{testOptions, {NoSync: true}} {
		e, err := Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		b := e.NewBatch()
		_ = b.Set([]byte("synced"), []byte("1"))
		_ = b.DeleteRange([]byte("gone/"), []byte("gone0"))
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		b2 := e.NewBatch()
		_ = b2.Set([]byte("gone/x"), []byte("1"))
		if err := b2.Commit(true); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		e, err = Open(dir, opts)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		for _, k := range []string{"synced", "gone/x"} {
			if v, err := e.Get([]byte(k)); err != nil || string(v) != "1" {
				t.Fatalf("after reopen get %q = %q, %v", k, v, err)
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenRefusesForeignAndCorruptDirs(t *testing.T) {
	root := t.TempDir()

	foreign := filepath.Join(root, "foreign")
	if err := os.MkdirAll(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A real store whose manifest is then overwritten with garbage.
	corrupt := filepath.Join(root, "corrupt")
	e, err := Open(corrupt, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	manifests, _ := filepath.Glob(filepath.Join(corrupt, "MANIFEST-*"))
	if len(manifests) == 0 {
		t.Fatal("no MANIFEST in a fresh store")
	}
	for _, m := range manifests {
		if err := os.WriteFile(m, []byte(strings.Repeat("garbage!", 100)), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	for _, dir := range []string{foreign, file, corrupt} {
		e, err := Open(dir, testOptions)
		if err == nil {
			_ = e.Close()
			t.Fatalf("open %s succeeded", dir)
		}
		if !strings.Contains(err.Error(), dir) {
			t.Fatalf("open error %q does not name the dir %s", err, dir)
		}
		t.Logf("open %s: %v", filepath.Base(dir), err)
	}
	// The foreign dir was left alone.
	entries, _ := os.ReadDir(foreign)
	if len(entries) != 1 {
		t.Fatalf("open touched the foreign dir: %v", entries)
	}
}

func TestOpenTwiceIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	openAt(t, dir, testOptions)
	if e, err := Open(dir, testOptions); err == nil {
		_ = e.Close()
		t.Fatal("second open of a locked store succeeded")
	}
}

func BenchmarkEngine(b *testing.B) {
	enginetest.RunBenchmarks(b, func(b *testing.B) storage.Engine {
		e, err := Open(filepath.Join(b.TempDir(), "db"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = e.Close() })
		return e
	})
}

// TestCompactAllReclaimsSpace writes 24 MiB, deletes nearly all of it with
// point deletes (as MVCC compaction does) and checks that CompactAll gives
// the space back: the files on disk shrink to a small fraction, and the
// data left is intact.
func TestCompactAllReclaimsSpace(t *testing.T) {
	opts := testOptions
	opts.manualCompactionsOnly = true // Pebble would reclaim some of it on its own, at a time of its choosing
	e := openAt(t, filepath.Join(t.TempDir(), "db"), opts)
	value := make([]byte, 8<<10)
	rnd := rand.NewChaCha8([32]byte{1})
	// Enough data that the files which stay whatever is deleted (the WAL
	// files Pebble keeps for reuse, with up to zeroAhead+zeroChunk of zeros
	// each: zerowal.go) are well below the third of the size checked below.
	const keys = 4096
	for i := 0; i < keys; i += 256 {
		b := e.NewBatch()
		for j := i; j < i+256; j++ {
			_, _ = rnd.Read(value) // random values: no help from compression
			value[0] = byte(j)
			if err := b.Set(fmt.Appendf(nil, "k/%05d", j), value); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
	}
	// Settle the data in the bottom level, where a store that has run for a
	// while holds most of it.
	flushAndCompactKeys(t, e)
	full := e.Usage().SizeBytes
	b := e.NewBatch()
	for j := range keys {
		if j%100 != 0 {
			_ = b.Delete(fmt.Appendf(nil, "k/%05d", j))
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := e.CompactAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Pebble deletes the replaced files just after the compaction returns.
	// What stays besides the tables is fixed: the WAL files Pebble keeps
	// for reuse (a memtable's worth each), the manifest and options.
	var after storage.Usage
	deadline := time.Now().Add(30 * time.Second)
	for after = e.Usage(); after.SizeBytes > full/3 && time.Now().Before(deadline); after = e.Usage() {
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("size before deletes %d, after compaction %+v", full, after)
	if full < keys*8<<10 || after.SizeBytes > full/3 || after.LiveBytes > full/20 {
		t.Fatalf("size %d bytes with %d KiB written, %+v after deleting 99%% and compacting", full, keys*8, after)
	}
	n := 0
	it, err := e.NewIter(storage.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		if want := fmt.Sprintf("k/%05d", n*100); string(it.Key()) != want || len(it.Value()) != len(value) || it.Value()[0] != byte(n*100) {
			t.Fatalf("key %d: %q (%d bytes), want %s", n, it.Key(), len(it.Value()), want)
		}
		n++
	}
	if err := it.Close(); err != nil || n != (keys+99)/100 {
		t.Fatalf("%d keys left (%v), want %d", n, err, (keys+99)/100)
	}
}

// TestCompactAllStopsAtClose: a Close during a CompactAll does not wait for
// the compactions not yet started, and CompactAll after Close fails cleanly.
func TestCompactAllAfterClose(t *testing.T) {
	e := openAt(t, filepath.Join(t.TempDir(), "db"), testOptions)
	b := e.NewBatch()
	_ = b.Set([]byte("a"), []byte("1"))
	_ = b.Set([]byte("b"), []byte("2"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.CompactAll(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled compaction: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.CompactAll(context.Background()); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

// flushAndCompactKeys flushes the memtable and compacts the k/ span with a
// plain Pebble compaction (not CompactAll).
func flushAndCompactKeys(t *testing.T, e *Engine) {
	t.Helper()
	if err := e.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Compact(context.Background(), []byte("k/"), []byte("k0"), false); err != nil {
		t.Fatal(err)
	}
}
