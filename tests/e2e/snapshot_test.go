package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

// TestSnapshotSaveRestore takes a backup the way operators do (etcdctl
// snapshot save), restores it with `metastore snapshot restore`, and checks
// that a member started on the restored dir serves the same data at the
// same revisions and keeps counting from there.
func TestSnapshotSaveRestore(t *testing.T) {
	m, c, ctx := setup(t)
	var last *clientv3.PutResponse
	for _, k := range []string{"a", "b", "c"} {
		resp, err := c.Put(ctx, "snap/"+k, "value-"+k)
		check(t, "put", err)
		last = resp
	}
	_, err := c.Delete(ctx, "snap/b")
	check(t, "delete", err)
	// A delete after the last put: its revision is what the store resumes from.

	file := filepath.Join(t.TempDir(), "backup.db")
	m.MustEtcdctl("snapshot", "save", file)

	restored := filepath.Join(t.TempDir(), "restored")
	cmd := exec.Command(framework.ServerBinary(t), "snapshot", "restore", file, "--data-dir", restored)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("metastore snapshot restore: %v\n%s", err, b)
	}
	// A second restore into the same (now non-empty) dir must refuse.
	if b, err := exec.Command(framework.ServerBinary(t), "snapshot", "restore", file, "--data-dir", restored).CombinedOutput(); err == nil {
		t.Fatalf("restore over a non-empty dir succeeded: %s", b)
	}

	m2 := framework.Start(t, framework.Options{Name: "restored", ExtraArgs: []string{"--data-dir", restored}})
	c2 := m2.Client()
	got, err := c2.Get(ctx, "snap/", clientv3.WithPrefix())
	check(t, "get after restore", err)
	if len(got.Kvs) != 2 || string(got.Kvs[0].Key) != "snap/a" || string(got.Kvs[1].Key) != "snap/c" {
		t.Fatalf("restored keys = %v", got.Kvs)
	}
	if got.Kvs[1].ModRevision != last.Header.Revision {
		t.Fatalf("snap/c mod revision %d after restore, want %d", got.Kvs[1].ModRevision, last.Header.Revision)
	}
	resp, err := c2.Put(ctx, "snap/d", "new")
	check(t, "put after restore", err)
	if resp.Header.Revision <= got.Header.Revision {
		t.Fatalf("revision went from %d to %d after restore", got.Header.Revision, resp.Header.Revision)
	}

	// A damaged backup is refused, never restored.
	bad := filepath.Join(t.TempDir(), "bad.db")
	if b, err := exec.Command("cp", file, bad).CombinedOutput(); err != nil {
		t.Fatalf("copy backup: %v %s", err, b)
	}
	if b, err := exec.Command("dd", "if=/dev/urandom", "of="+bad, "bs=1", "count=16", "seek=700", "conv=notrunc").CombinedOutput(); err != nil {
		t.Fatalf("corrupt copy: %v %s", err, b)
	}
	b, err := exec.Command(framework.ServerBinary(t), "snapshot", "restore", bad, "--data-dir", filepath.Join(t.TempDir(), "x")).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "sha256 mismatch") {
		t.Fatalf("restore of a damaged backup: err %v, output %s", err, b)
	}
}
