package snapshot

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/metastore/metastore/internal/alarm"
	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/migrate/mode"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/mvcc/mvcctest"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
)

// fill writes a history with overwrites, deletes, a multi-key txn, a
// compaction, leases, auth and an alarm into eng.
func fill(t *testing.T, eng storage.Engine) *mvcc.Store {
	t.Helper()
	s, err := mvcc.Open(eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	txn := func(fn func(tw *mvcc.TxnWrite)) {
		b := eng.NewBatch()
		defer b.Close()
		w := s.NewWriter(b)
		tw := w.Begin()
		fn(tw)
		tw.End()
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		w.Commit()
	}
	for i := 0; i < 30; i++ {
		txn(func(tw *mvcc.TxnWrite) {
			tw.Put(fmt.Appendf(nil, "k%d", i%7), fmt.Appendf(nil, "v%d", i), int64(i%3)*0x10)
		})
		if i%5 == 4 {
			txn(func(tw *mvcc.TxnWrite) { tw.DeleteRange(fmt.Appendf(nil, "k%d", i%7), nil) })
		}
	}
	txn(func(tw *mvcc.TxnWrite) {
		tw.Put([]byte("multi/a"), []byte("1"), 0)
		tw.Put([]byte("multi/b\x00z"), []byte("2"), 0)
		tw.DeleteRange([]byte("k1"), nil)
	})
	b := eng.NewBatch()
	w := s.NewWriter(b)
	done, err := w.Compact(12)
	if err != nil {
		t.Fatal(err)
	}
	errs := []error{w.Finish(), b.Commit(true)}
	w.Commit()
	errs = append(errs, b.Close())
	<-done
	txn(func(tw *mvcc.TxnWrite) { tw.Put([]byte("after"), []byte("compaction"), 0x20) })
	b = eng.NewBatch()
	for _, l := range []lease.Record{{ID: 0x10, TTL: 60}, {ID: 0x20, TTL: 300, Remaining: 120}} {
		errs = append(errs, lease.StageImport(b, l))
	}
	errs = append(errs, auth.StageImport(b, &auth.Snapshot{Enabled: true, Revision: 7,
		Users: []*authpb.User{{Name: []byte("root"), Password: []byte("$2a$hash"), Roles: []string{"root"}}},
		Roles: []*authpb.Role{{Name: []byte("root")}, {Name: []byte("r"), KeyPermission: []*authpb.Permission{
			{PermType: authpb.Permission_READ, Key: []byte("b")}, {PermType: authpb.Permission_WRITE, Key: []byte("a"), RangeEnd: []byte("z")}}}},
	}))
	errs = append(errs, alarm.StageImport(b, []*pb.AlarmMember{{MemberID: 42, Alarm: pb.AlarmType_NOSPACE}}))
	errs = append(errs, b.Commit(true), b.Close())
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return s
}

// saveAsEtcdctl writes what Maintenance.Snapshot streams, then its SHA-256,
// as `etcdctl snapshot save` stores it.
func saveAsEtcdctl(t *testing.T, eng storage.Engine, out string) {
	t.Helper()
	r, size, err := Export(eng, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	if _, err := r.Read(data); err != nil && size > 0 {
		t.Fatal(err)
	}
	rest, _ := r.Read(make([]byte, 1))
	if err := r.Close(); err != nil || rest != 0 {
		t.Fatalf("close %v, %d bytes past the announced size", err, rest)
	}
	sum := sha256.Sum256(data)
	if err := os.WriteFile(out, append(data, sum[:]...), 0o600); err != nil {
		t.Fatal(err)
	}
}

func dumpAll(t *testing.T, s *mvcc.Store) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	for rev := s.CompactRev(); rev <= s.Rev(); rev++ {
		if rev < 1 {
			continue
		}
		res, err := s.Range(context.Background(), []byte{0}, []byte{0}, mvcc.RangeOptions{Rev: rev})
		if err != nil {
			t.Fatalf("range at %d: %v", rev, err)
		}
		var sb strings.Builder
		for _, kv := range res.KVs {
			fmt.Fprintf(&sb, "%q=%q c%d m%d v%d l%x;", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
		}
		out[rev] = sb.String()
	}
	return out
}

// A state exported as an etcd backend and restored reads the same at every
// uncompacted revision, with the same leases, auth and alarms.
func TestExportRestoreRoundTrip(t *testing.T) {
	src := memory.New()
	defer src.Close()
	s := fill(t, src)
	defer s.Close()
	file := filepath.Join(t.TempDir(), "snap.db")
	saveAsEtcdctl(t, src, file)

	dataDir := filepath.Join(t.TempDir(), "restored")
	sum, err := Restore(file, dataDir, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Revision != s.Rev() || sum.CompactRevision != 12 || sum.Leases != 2 || sum.Users != 1 || sum.Roles != 2 || sum.Alarms != 1 {
		t.Fatalf("summary %+v, source at revision %d", sum, s.Rev())
	}
	eng, err := pebbleengine.Open(filepath.Join(dataDir, "member", "pebble"), pebbleengine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	s2, err := mvcc.Open(eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	// The restored store passes mvcc's own consistency checks.
	mvcctest.Check(t, s2)
	if s2.Rev() != s.Rev() || s2.CompactRev() != s.CompactRev() || s2.KeyCount() != s.KeyCount() {
		t.Fatalf("restored rev %d compact %d keys %d, want %d %d %d", s2.Rev(), s2.CompactRev(), s2.KeyCount(), s.Rev(), s.CompactRev(), s.KeyCount())
	}
	if a, b := dumpAll(t, s), dumpAll(t, s2); !reflect.DeepEqual(a, b) {
		t.Fatalf("history differs:\nsource   %v\nrestored %v", a, b)
	}
	if _, err := s2.Range(context.Background(), []byte("k"), nil, mvcc.RangeOptions{Rev: 11}); !errors.Is(err, mvcc.ErrCompacted) {
		t.Fatalf("read below the compaction: %v", err)
	}
	for _, pair := range [][2]any{
		{mustLeases(t, src), mustLeases(t, eng)},
		{mustAuth(t, src), mustAuth(t, eng)},
		{mustAlarms(t, src), mustAlarms(t, eng)},
		{wantAttachments(t, s), attachments(t, eng)},
	} {
		if !reflect.DeepEqual(fmt.Sprint(pair[0]), fmt.Sprint(pair[1])) {
			t.Fatalf("differs: source %v, restored %v", pair[0], pair[1])
		}
	}
}

func mustLeases(t *testing.T, r storage.Reader) []lease.Record {
	l, err := lease.ReadRecords(r)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustAuth(t *testing.T, r storage.Reader) string {
	a, err := auth.ReadSnapshot(r)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%v %d", a.Enabled, a.Revision)
	for _, u := range a.Users {
		fmt.Fprintf(&sb, " %s", prototext.Format(u))
	}
	for _, r := range a.Roles {
		fmt.Fprintf(&sb, " %s", prototext.Format(r))
	}
	return sb.String()
}

func mustAlarms(t *testing.T, r storage.Reader) []*pb.AlarmMember {
	a, err := alarm.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	return a.Get(pb.AlarmType_NONE)
}

// wantAttachments is what the L/ space must hold: every live key with a
// lease that exists (the source store was written without a lessor).
func wantAttachments(t *testing.T, s *mvcc.Store) []string {
	res, err := s.Range(context.Background(), []byte{0}, []byte{0}, mvcc.RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range res.KVs {
		if kv.Lease == 0x10 || kv.Lease == 0x20 {
			out = append(out, fmt.Sprintf("%x%016x%x", storage.PrefixLeaseKeys, kv.Lease, kv.Key))
		}
	}
	sort.Strings(out)
	return out
}

// attachments lists the lease attachments (the L/ space) raw.
func attachments(t *testing.T, r storage.Reader) []string {
	it, err := r.NewIter(storage.IterOptions{LowerBound: storage.PrefixLeaseKeys, UpperBound: storage.PrefixEnd(storage.PrefixLeaseKeys)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, fmt.Sprintf("%x", it.Key()))
	}
	return out
}

// Each kind of bad input is refused with one line, and leaves no data dir.
func TestRestoreRefusesBadInput(t *testing.T) {
	src := memory.New()
	defer src.Close()
	s := fill(t, src)
	defer s.Close()
	good := filepath.Join(t.TempDir(), "snap.db")
	saveAsEtcdctl(t, src, good)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := append([]byte(nil), data...)
	flipped[5000] ^= 1
	other := otherBolt(t, filepath.Join(dir, "plain.bolt"))
	newer := withStorageVersion(t, data, "3.9.0", filepath.Join(dir, "newer"))
	cases := []struct {
		name, path, want string
		opts             RestoreOptions
	}{
		{"truncated", write("truncated.db", data[:8192+sha256.Size]), "sha256 mismatch", RestoreOptions{}},
		{"truncated without hash", write("cut.db", data[:len(data)/2]), "no SHA-256 trailer", RestoreOptions{}},
		{"truncated, hash skipped", write("cut2.db", data[:8192]), "truncated", RestoreOptions{SkipHashCheck: true}},
		{"flipped bit", write("flipped.db", flipped), "sha256 mismatch", RestoreOptions{}},
		{"not bbolt", write("text.db", append(make([]byte, 4096), sha256Of(make([]byte, 4096))...)), "not a valid etcd snapshot", RestoreOptions{}},
		{"bbolt but not etcd", other, "no \"key\" bucket", RestoreOptions{}},
		{"newer storage version", newer, "storage version 3.9.0 is newer than 3.7", RestoreOptions{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "d")
			_, err := Restore(c.path, dataDir, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line containing %q", err, c.want)
			}
			if _, serr := os.Stat(dataDir); !os.IsNotExist(serr) {
				t.Fatalf("a failed restore left %s behind", dataDir)
			}
		})
	}
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// addHash appends the SHA-256 etcdctl appends.
func addHash(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, sha256Of(b)...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// otherBolt makes a hashed bbolt file of another application.
func otherBolt(t *testing.T, path string) string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("widgets"))
		if err != nil {
			return err
		}
		return b.Put([]byte("a"), []byte("b"))
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	return addHash(t, path)
}

// withStorageVersion rewrites the storage version of a saved snapshot ("":
// none, as etcd v3.5 wrote).
func withStorageVersion(t *testing.T, saved []byte, v, path string) string {
	t.Helper()
	if err := os.WriteFile(path, saved[:len(saved)-sha256.Size], 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if v == "" {
			return tx.Bucket([]byte("meta")).Delete([]byte("storageVersion"))
		}
		return tx.Bucket([]byte("meta")).Put([]byte("storageVersion"), []byte(v))
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	return addHash(t, path)
}

// etcd v3.5 recorded no storage version; its files restore, and so do those
// of v3.6.
func TestRestoreOlderStorageVersions(t *testing.T) {
	src := memory.New()
	defer src.Close()
	s := fill(t, src)
	defer s.Close()
	good := filepath.Join(t.TempDir(), "snap.db")
	saveAsEtcdctl(t, src, good)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]string{"": "3.5.0", "3.6.0": "3.6.0"} {
		file := withStorageVersion(t, data, v, filepath.Join(t.TempDir(), "old.db"))
		sum, err := Restore(file, filepath.Join(t.TempDir(), "d"), RestoreOptions{})
		if err != nil || sum.StorageVersion != want || sum.Revision != s.Rev() {
			t.Fatalf("storage version %q: %+v, %v", v, sum, err)
		}
	}
}

// --bump-revision with --mark-compacted, as etcdutl: the store resumes
// above the old revisions and every read of them is refused as compacted.
func TestRestoreBumpRevision(t *testing.T) {
	s, _, s2 := restoreFilled(t, RestoreOptions{RevisionBump: 1000, MarkCompacted: true})
	if s2.Rev() != s.Rev()+1000 || s2.CompactRev() != s2.Rev() {
		t.Fatalf("rev %d compact %d, want both %d", s2.Rev(), s2.CompactRev(), s.Rev()+1000)
	}
	if _, err := s2.Range(context.Background(), []byte("after"), nil, mvcc.RangeOptions{Rev: s.Rev()}); !errors.Is(err, mvcc.ErrCompacted) {
		t.Fatalf("read of an old revision: %v", err)
	}
	res, err := s2.Range(context.Background(), []byte("after"), nil, mvcc.RangeOptions{})
	if err != nil || len(res.KVs) != 1 || string(res.KVs[0].Value) != "compaction" {
		t.Fatalf("latest value after the bump: %v, %v", res, err)
	}
}

// --migrate-token restores the cluster in migration mode: the replicated
// marker is in the engine, with the restored revision.
func TestRestoreMigrateToken(t *testing.T) {
	s, eng, _ := restoreFilled(t, RestoreOptions{MigrateToken: "tok"})
	v, err := eng.Get(mode.Key)
	if err != nil || string(v) != fmt.Sprintf(`{"token":"tok","revision":%d}`, s.Rev()) {
		t.Fatalf("migration marker %q, %v", v, err)
	}
}

// restoreFilled fills a store, saves it as etcdctl would and restores it
// with opts. It returns the source store, the restored engine and the
// store on it, which has passed mvcc's consistency checks; all are closed
// when the test ends.
func restoreFilled(t *testing.T, opts RestoreOptions) (src *mvcc.Store, eng storage.Engine, restored *mvcc.Store) {
	t.Helper()
	srcEng := memory.New()
	t.Cleanup(func() { _ = srcEng.Close() })
	src = fill(t, srcEng)
	t.Cleanup(func() { _ = src.Close() })
	file := filepath.Join(t.TempDir(), "snap.db")
	saveAsEtcdctl(t, srcEng, file)
	dataDir := filepath.Join(t.TempDir(), "d")
	if _, err := Restore(file, dataDir, opts); err != nil {
		t.Fatal(err)
	}
	eng, err := pebbleengine.Open(filepath.Join(dataDir, "member", "pebble"), pebbleengine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	restored, err = mvcc.Open(eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = restored.Close() })
	mvcctest.Check(t, restored)
	return src, eng, restored
}

// A member start removes the scratch copies a crash left during a snapshot
// and refuses a data dir whose restore was interrupted.
func TestPrepareMemberDir(t *testing.T) {
	member := filepath.Join(t.TempDir(), "member")
	for _, d := range []string{"pebble", "snapshot-123", "snapshot-456/db"} {
		if err := os.MkdirAll(filepath.Join(member, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := PrepareMemberDir(member); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(member)
	if err != nil || len(entries) != 1 || entries[0].Name() != "pebble" {
		t.Fatalf("left %v, %v; want only pebble", entries, err)
	}
	if err := os.Mkdir(filepath.Join(member, "pebble.restoring"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := PrepareMemberDir(member); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("interrupted restore: %v", err)
	}
}
