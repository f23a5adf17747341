package memory

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/enginetest"
)

func closeAtEnd(t *testing.T, e *Engine) storage.Engine {
	t.Cleanup(func() {
		if err := e.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return e
}

func TestConformance(t *testing.T) {
	enginetest.RunSuite(t, enginetest.Suite{
		Open: func(t *testing.T) storage.Engine { return closeAtEnd(t, New()) },
		OpenCheckpoint: func(t *testing.T, dir string) storage.Engine {
			e, err := Load(dir)
			if err != nil {
				t.Fatalf("load checkpoint: %v", err)
			}
			return closeAtEnd(t, e)
		},
	})
}

func TestLoadDetectsCorruption(t *testing.T) {
	e := New()
	b := e.NewBatch()
	for _, k := range []string{"a", "b", "c"} {
		if err := b.Set([]byte(k), []byte("value-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := e.Checkpoint(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, CheckpointFile)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err != nil {
		t.Fatalf("load intact checkpoint: %v", err)
	}
	// Every single-byte flip and every truncation must be caught.
	for i := range good {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0x01
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flipping byte %d: load error %v, want ErrCorrupt", i, err)
		}
	}
	for n := range len(good) {
		if err := os.WriteFile(path, good[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncating to %d bytes: load error %v, want ErrCorrupt", n, err)
		}
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Fatal("load of a dir without a checkpoint succeeded")
	}
}

func BenchmarkEngine(b *testing.B) {
	enginetest.RunBenchmarks(b, func(b *testing.B) storage.Engine {
		e := New()
		b.Cleanup(func() { _ = e.Close() })
		return e
	})
}
