package pebble

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func logFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".log") {
			n++
		}
	}
	return n
}

// TestWALDir: the log goes to WALDir, and the store opens with the log
// moved back and forth between runs without losing a synced write.
func TestWALDir(t *testing.T) {
	root := t.TempDir()
	dir, walDir := filepath.Join(root, "db"), filepath.Join(root, "wal")
	steps := []string{walDir, "", filepath.Join(root, "wal2"), walDir}
	for i, wd := range steps {
		e := openAt(t, dir, Options{WALDir: wd})
		for j := 0; j <= i; j++ {
			mustGetValue(t, e, j)
		}
		b := e.NewBatch()
		if err := b.Set(key(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if wd != "" && logFiles(t, wd) == 0 {
			t.Fatalf("step %d: no log in %s", i, wd)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		// The previous run's log, replayed from the store's dir, is deleted
		// by Pebble's cleanup goroutine after Open returns; Close waits for
		// that cleanup, so only then is its absence certain.
		if wd != "" && logFiles(t, dir) != 0 {
			t.Fatalf("step %d: a log in the store's dir although the wal dir is %s", i, wd)
		}
	}
}

func key(i int) []byte { return []byte{'w', byte('0' + i)} }

func mustGetValue(t *testing.T, e *Engine, i int) {
	t.Helper()
	if i == 0 {
		return
	}
	if v, err := e.Get(key(i - 1)); err != nil || string(v) != "v" {
		t.Fatalf("write of step %d: %q, %v", i-1, v, err)
	}
}

func TestWALDirRefusesForeignFiles(t *testing.T) {
	root := t.TempDir()
	walDir := filepath.Join(root, "wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(walDir, "0000000000000000-0000000000000000.wal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(filepath.Join(root, "db"), Options{WALDir: walDir})
	if err == nil || !strings.Contains(err.Error(), "not a metastore write-ahead log") {
		t.Fatalf("open with an etcd wal dir: %v", err)
	}
}
