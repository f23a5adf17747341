package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestWALDir: with --wal-dir the write-ahead log lives there, not in the
// data dir; acknowledged writes survive kill -9 even when the next run
// moves the log elsewhere or back into the data dir (an extension: etcd
// cannot move its WAL, so against etcd the test stops after the first part).
func TestWALDir(t *testing.T) {
	root := t.TempDir()
	walDir := filepath.Join(root, "wal")
	m, c, ctx := setup(t, "--wal-dir", walDir)

	logs := func(dir string) int {
		n := 0
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && (strings.HasSuffix(p, ".wal") || strings.HasSuffix(p, ".log") && !strings.HasSuffix(p, m.Name+".log")) {
				n++
			}
			return nil
		})
		return n
	}
	written := 0
	write := func(n int) {
		for i := 0; i < n; i++ {
			mustPut(t, c, ctx, fmt.Sprintf("k%04d", written), "v")
			written++
		}
	}
	verify := func(step string) {
		resp := mustGet(t, m.Client(), ctx, "k", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if int(resp.Count) != written {
			t.Fatalf("%s: %d keys after kill -9 and restart, want %d", step, resp.Count, written)
		}
	}

	write(50)
	if logs(walDir) == 0 {
		t.Fatalf("no write-ahead log in --wal-dir %s", walDir)
	}
	if n := logs(m.DataDir); n != 0 {
		t.Fatalf("%d write-ahead logs in the data dir although --wal-dir is set", n)
	}
	m.Kill9()
	m.StartAgain()
	verify("same --wal-dir")
	relMetastoreOnly(t)
	m.Kill9()
	m.StartAgainWith() // the log moves back into the data dir
	c = m.Client()
	verify("--wal-dir dropped")
	write(50)
	m.Kill9()
	m.StartAgainWith("--wal-dir", filepath.Join(root, "wal2"))
	c = m.Client()
	verify("--wal-dir changed")
	write(50)
	m.Kill9()
	m.StartAgainWith("--wal-dir", walDir)
	verify("--wal-dir back")
}
