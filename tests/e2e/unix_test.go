package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/tests/framework"
)

// TestUnixSocketListener serves clients on a unix:// listen URL next to the
// TCP one, through clientv3 and etcdctl, and restarts after kill -9 even
// though the dead process left its socket file behind.
func TestUnixSocketListener(t *testing.T) {
	// Socket paths are limited to ~107 bytes: keep it short, not in TempDir.
	dir, err := os.MkdirTemp("", "ms-sock")
	check(t, "temp dir", err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "c.sock")
	unixURL := "unix://" + sock

	m2 := framework.Start(t, framework.Options{ExtraListenClientURLs: []string{unixURL}})
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket file %s: %v (mode %v)", sock, err, fi)
	}

	c, err := clientv3.New(clientv3.Config{Endpoints: []string{unixURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	check(t, "clientv3 over unix socket", err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mustPut(t, c, ctx, "unix-key", "v1")

	out := m2.MustEtcdctl("--endpoints="+unixURL, "get", "unix-key", "--print-value-only")
	if strings.TrimSpace(out) != "v1" {
		t.Fatalf("etcdctl get over the socket = %q, want v1", out)
	}
	// The TCP listener serves the same data.
	if got := mustGet(t, m2.Client(), ctx, "unix-key"); len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v1" {
		t.Fatalf("get over TCP: %v", got.Kvs)
	}

	m2.Kill9()
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("after kill -9 the socket file should still be there (to test its removal): %v", err)
	}
	m2.StartAgain()
	c2, err := clientv3.New(clientv3.Config{Endpoints: []string{unixURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	check(t, "clientv3 over unix socket after restart", err)
	defer c2.Close()
	if got := mustGet(t, c2, ctx, "unix-key"); len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v1" {
		t.Fatalf("get over the socket after restart: %v", got.Kvs)
	}

	m2.Stop()
	if _, err := os.Lstat(sock); err == nil {
		t.Fatal("a clean stop should remove the socket file")
	}
}
