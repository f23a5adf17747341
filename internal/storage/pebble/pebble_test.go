package pebble

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
