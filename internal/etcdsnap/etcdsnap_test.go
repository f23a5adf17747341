package etcdsnap

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/mvcc"
)

func writeFile(t *testing.T, path string, versions []mvcc.ImportedVersion) {
	t.Helper()
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range versions {
		if err := w.PutVersion(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.PutLease(lease.Record{ID: 9, TTL: 30, Remaining: 12}); err != nil {
		t.Fatal(err)
	}
	if err := w.PutAuth(&auth.Snapshot{Enabled: true, Revision: 4, Users: []*authpb.User{{Name: []byte("u"), Roles: []string{"r"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.PutAlarms([]*pb.AlarmMember{{MemberID: 3, Alarm: pb.AlarmType_CORRUPT}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(Meta{ConsistentIndex: 11, Term: 2, Scheduled: 3, Finished: 3, ClusterVersion: "3.7.0"}); err != nil {
		t.Fatal(err)
	}
}

// What the Writer writes, the Reader reads back, in etcd's layout: revision
// keys with '_' and a 't' for deletions.
func TestWriteRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	want := []mvcc.ImportedVersion{
		{Key: []byte("a"), Main: 2, CreateRevision: 2, Version: 1, Value: []byte("1")},
		{Key: []byte("b"), Main: 3, CreateRevision: 3, Version: 1, Lease: 9, Value: []byte("2")},
		{Key: []byte("b"), Main: 3, Sub: 1, CreateRevision: 3, Version: 2, Lease: 9, Value: []byte("3")},
		{Key: []byte("a"), Main: 4, Tombstone: true},
	}
	writeFile(t, path, want)
	r, err := Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []mvcc.ImportedVersion
	if err := r.Versions(func(v mvcc.ImportedVersion) error { got = append(got, v); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("versions %+v, want %+v", got, want)
	}
	m, err := r.Meta()
	if err != nil || m != (Meta{ConsistentIndex: 11, Term: 2, Scheduled: 3, Finished: 3, ClusterVersion: "3.7.0"}) {
		t.Fatalf("meta %+v, %v", m, err)
	}
	if l, err := r.Leases(); err != nil || len(l) != 1 || l[0] != (lease.Record{ID: 9, TTL: 30, Remaining: 12}) {
		t.Fatalf("leases %+v, %v", l, err)
	}
	if a, err := r.Auth(); err != nil || !a.Enabled || a.Revision != 4 || len(a.Users) != 1 || string(a.Users[0].Name) != "u" {
		t.Fatalf("auth %+v, %v", a, err)
	}
	if al, err := r.Alarms(); err != nil || len(al) != 1 || al[0].MemberID != 3 || al[0].Alarm != pb.AlarmType_CORRUPT {
		t.Fatalf("alarms %+v, %v", al, err)
	}
	if r.Version.String() != "3.7.0" {
		t.Fatalf("storage version %s", r.Version)
	}
	err = r.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketKey).Cursor().Last()
		if string(k[8:9]) != "_" || k[len(k)-1] != 't' || len(k) != revLen+1 {
			t.Errorf("last key %x: not etcd's deletion key", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A key bucket entry that is not a revision is refused, not misread.
func TestMalformedRevision(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	writeFile(t, path, nil)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketKey).Put([]byte("short"), nil) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if err := os.WriteFile(path, append(b, sum[:]...), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = r.Versions(func(mvcc.ImportedVersion) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "malformed revision") {
		t.Fatalf("malformed key: %v", err)
	}
}
