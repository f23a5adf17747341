package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

// The migration tests move a history between the real etcd v3.7.3
// (.bin/etcd-ref) and metastore through the operators' tools (etcdctl
// snapshot save, etcdutl and metastore snapshot restore) and compare the two
// live servers through clientv3: every key at every uncompacted revision,
// the watch history, leases and auth.

const (
	// migPeerURL is the peer URL the restored single member is recorded
	// with; it never dials itself, so nothing listens there.
	migPeerURL      = "http://127.0.0.1:2380"
	migRootPassword = "root-pw"
	migPrefix       = "mig/"
)

// migClient is a root client of m (auth is enabled by fillHistory).
func migClient(t *testing.T, m *framework.Member) *clientv3.Client {
	t.Helper()
	return migClientTLS(t, m, nil)
}

// migClientTLS is migClient over TLS (cfg nil: plain).
func migClientTLS(t *testing.T, m *framework.Member, cfg *tls.Config) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, DialTimeout: 10 * time.Second,
		Username: "root", Password: migRootPassword, TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// fillHistory writes overwrites, deletes, a multi-key txn, leases (one
// revoked), a compaction in the middle of the history, then users and roles
// and enables auth. It returns the compaction revision.
func fillHistory(t *testing.T, ctx context.Context, c *clientv3.Client) int64 {
	t.Helper()
	var leases []clientv3.LeaseID
	for _, ttl := range []int64{600, 900, 1200} {
		l, err := c.Grant(ctx, ttl)
		check(t, "grant", err)
		leases = append(leases, l.ID)
	}
	var compactAt int64
	for i := 0; i < 60; i++ {
		key := fmt.Sprintf("%sk%02d", migPrefix, i%11)
		var opts []clientv3.OpOption
		if i%4 < len(leases) && i%4 != 3 {
			opts = append(opts, clientv3.WithLease(leases[i%4]))
		}
		r := mustPut(t, c, ctx, key, fmt.Sprintf("value-%d", i), opts...)
		if i == 25 {
			compactAt = r.Header.Revision
		}
		if i%7 == 6 {
			_, err := c.Delete(ctx, key)
			check(t, "delete", err)
		}
	}
	_, err := c.Txn(ctx).Then(
		clientv3.OpPut(migPrefix+"txn/a", "1"),
		clientv3.OpPut(migPrefix+"txn/b", "2", clientv3.WithLease(leases[1])),
		clientv3.OpDelete(migPrefix+"k03"),
	).Commit()
	check(t, "txn", err)
	_, err = c.Delete(ctx, migPrefix+"k1", clientv3.WithPrefix())
	check(t, "delete prefix", err)
	_, err = c.Compact(ctx, compactAt, clientv3.WithCompactPhysical())
	check(t, "compact", err)
	mustPut(t, c, ctx, migPrefix+"after", "compaction")
	_, err = c.Revoke(ctx, leases[2])
	check(t, "revoke", err)

	_, err = c.RoleAdd(ctx, "reader")
	check(t, "role add", err)
	_, err = c.RoleGrantPermission(ctx, "reader", migPrefix, clientv3.GetPrefixRangeEnd(migPrefix), clientv3.PermissionType(clientv3.PermRead))
	check(t, "grant permission", err)
	_, err = c.RoleGrantPermission(ctx, "reader", "single", "", clientv3.PermissionType(clientv3.PermReadWrite))
	check(t, "grant permission", err)
	for _, u := range [][2]string{{"alice", "alice-pw"}, {"root", migRootPassword}} {
		_, err = c.UserAdd(ctx, u[0], u[1])
		check(t, "user add", err)
	}
	_, err = c.UserGrantRole(ctx, "alice", "reader")
	check(t, "grant role", err)
	_, err = c.UserGrantRole(ctx, "root", "root")
	check(t, "grant role", err)
	_, err = c.AuthEnable(ctx)
	check(t, "auth enable", err)
	return compactAt
}

// kvLine is a KeyValue with every field a client sees.
func kvLines(r *clientv3.GetResponse) []string {
	out := make([]string, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		out = append(out, fmt.Sprintf("%q=%q create=%d mod=%d version=%d lease=%x", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease))
	}
	return out
}

// watchLines replays the history from rev to upTo.
func watchLines(t *testing.T, ctx context.Context, c *clientv3.Client, rev, upTo int64) []string {
	t.Helper()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []string
	for wr := range c.Watch(wctx, "", clientv3.WithFromKey(), clientv3.WithRev(rev), clientv3.WithPrevKV()) {
		check(t, "watch", wr.Err())
		for _, ev := range wr.Events {
			prev := ""
			if ev.PrevKv != nil {
				prev = fmt.Sprintf(" prev=%q@%d", ev.PrevKv.Value, ev.PrevKv.ModRevision)
			}
			out = append(out, fmt.Sprintf("%s %q=%q create=%d mod=%d version=%d lease=%x%s", ev.Type, ev.Kv.Key, ev.Kv.Value,
				ev.Kv.CreateRevision, ev.Kv.ModRevision, ev.Kv.Version, ev.Kv.Lease, prev))
			if ev.Kv.ModRevision >= upTo {
				return out
			}
		}
	}
	t.Fatalf("watch from %d ended before revision %d: %v", rev, upTo, ctx.Err())
	return nil
}

// compareServers fails unless want and got (both root clients) serve the
// same history, leases and auth.
func compareServers(t *testing.T, ctx context.Context, want, got *clientv3.Client, compactAt int64, wantLeases int) {
	t.Helper()
	wr, err := want.Get(ctx, "", clientv3.WithFromKey())
	check(t, "get from source", err)
	gr, err := got.Get(ctx, "", clientv3.WithFromKey())
	check(t, "get from target", err)
	cur := wr.Header.Revision
	if gr.Header.Revision != cur {
		t.Fatalf("revision %d, source at %d", gr.Header.Revision, cur)
	}
	for rev := compactAt; rev <= cur; rev++ {
		w, err := want.Get(ctx, "", clientv3.WithFromKey(), clientv3.WithRev(rev))
		check(t, fmt.Sprintf("source get at %d", rev), err)
		g, err := got.Get(ctx, "", clientv3.WithFromKey(), clientv3.WithRev(rev))
		check(t, fmt.Sprintf("target get at %d", rev), err)
		if a, b := kvLines(w), kvLines(g); !slices.Equal(a, b) {
			t.Fatalf("at revision %d:\nsource %v\ntarget %v", rev, a, b)
		}
	}
	for _, c := range []*clientv3.Client{want, got} {
		if _, err := c.Get(ctx, "", clientv3.WithFromKey(), clientv3.WithRev(compactAt-1)); err != rpctypes.ErrCompacted {
			t.Fatalf("get below the compaction (%d): %v, want %v", compactAt-1, err, rpctypes.ErrCompacted)
		}
	}
	if a, b := watchLines(t, ctx, want, compactAt+1, cur), watchLines(t, ctx, got, compactAt+1, cur); !slices.Equal(a, b) {
		t.Fatalf("watch history differs:\nsource %v\ntarget %v", a, b)
	}

	lw, err := want.Leases(ctx)
	check(t, "source leases", err)
	lg, err := got.Leases(ctx)
	check(t, "target leases", err)
	ids := func(r *clientv3.LeaseLeasesResponse) []int64 {
		var out []int64
		for _, l := range r.Leases {
			out = append(out, int64(l.ID))
		}
		slices.Sort(out)
		return out
	}
	if a, b := ids(lw), ids(lg); !slices.Equal(a, b) || len(a) != wantLeases {
		t.Fatalf("leases: source %x, target %x", a, b)
	}
	for _, id := range ids(lw) {
		tw, err := want.TimeToLive(ctx, clientv3.LeaseID(id), clientv3.WithAttachedKeys())
		check(t, "source ttl", err)
		tg, err := got.TimeToLive(ctx, clientv3.LeaseID(id), clientv3.WithAttachedKeys())
		check(t, "target ttl", err)
		keysOf := func(r *clientv3.LeaseTimeToLiveResponse) []string {
			var out []string
			for _, k := range r.Keys {
				out = append(out, string(k))
			}
			sort.Strings(out)
			return out
		}
		// A restored lease starts again from its granted TTL (etcd keeps no
		// remaining TTL unless checkpointing is on), so the target's TTL is
		// at least the source's, and never above the grant.
		if tg.GrantedTTL != tw.GrantedTTL || tg.TTL > tg.GrantedTTL || tg.TTL < tw.TTL-5 || !slices.Equal(keysOf(tw), keysOf(tg)) {
			t.Fatalf("lease %x: source ttl %d/%d keys %v, target ttl %d/%d keys %v", id, tw.TTL, tw.GrantedTTL, keysOf(tw), tg.TTL, tg.GrantedTTL, keysOf(tg))
		}
	}

	sw, err := want.AuthStatus(ctx)
	check(t, "source auth status", err)
	sg, err := got.AuthStatus(ctx)
	check(t, "target auth status", err)
	if !sg.Enabled || sg.Enabled != sw.Enabled || sg.AuthRevision != sw.AuthRevision {
		t.Fatalf("auth: source enabled=%v rev=%d, target enabled=%v rev=%d", sw.Enabled, sw.AuthRevision, sg.Enabled, sg.AuthRevision)
	}
	uw, err := want.UserList(ctx)
	check(t, "source users", err)
	ug, err := got.UserList(ctx)
	check(t, "target users", err)
	if !slices.Equal(uw.Users, ug.Users) {
		t.Fatalf("users: source %v, target %v", uw.Users, ug.Users)
	}
	for _, u := range uw.Users {
		a, err := want.UserGet(ctx, u)
		check(t, "source user", err)
		b, err := got.UserGet(ctx, u)
		check(t, "target user", err)
		if !slices.Equal(a.Roles, b.Roles) {
			t.Fatalf("user %s roles: source %v, target %v", u, a.Roles, b.Roles)
		}
	}
	rw, err := want.RoleList(ctx)
	check(t, "source roles", err)
	rg, err := got.RoleList(ctx)
	check(t, "target roles", err)
	if !slices.Equal(rw.Roles, rg.Roles) {
		t.Fatalf("roles: source %v, target %v", rw.Roles, rg.Roles)
	}
	for _, r := range rw.Roles {
		a, err := want.RoleGet(ctx, r)
		check(t, "source role", err)
		b, err := got.RoleGet(ctx, r)
		check(t, "target role", err)
		if fmt.Sprint(a.Perm) != fmt.Sprint(b.Perm) {
			t.Fatalf("role %s: source %v, target %v", r, a.Perm, b.Perm)
		}
	}
}

// userCanRead checks that a restored password still authenticates and its
// role still limits what the user reads.
func userCanRead(t *testing.T, ctx context.Context, m *framework.Member) {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, DialTimeout: 10 * time.Second, Username: "alice", Password: "alice-pw"})
	check(t, "alice's client", err)
	defer c.Close()
	_, err = c.Get(ctx, migPrefix, clientv3.WithPrefix())
	check(t, "alice reads "+migPrefix, err)
	if _, err := c.Get(ctx, "elsewhere"); err != rpctypes.ErrPermissionDenied {
		t.Fatalf("alice read outside her role: %v, want %v", err, rpctypes.ErrPermissionDenied)
	}
}

// onlyAgainstMetastore skips a test that compares metastore with etcd-ref
// when the suite runs against another server binary.
func onlyAgainstMetastore(t *testing.T) {
	t.Helper()
	if os.Getenv(framework.EnvServerBin) != "" {
		t.Skip("compares metastore with etcd-ref: runs only against metastore")
	}
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	bin := name
	if name != framework.ServerBinary(t) {
		bin = framework.Tool(t, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestMigrationEtcdToMetastore: a snapshot of a real etcd restored with
// `metastore snapshot restore` serves the same state.
func TestMigrationEtcdToMetastore(t *testing.T) {
	onlyAgainstMetastore(t)
	// --unsafe-no-fsync: the source is thrown away, and fsyncs dominate the
	// fill on a loaded machine.
	etcd := framework.Start(t, framework.Options{Name: "etcd", Binary: framework.Tool(t, "etcd-ref"), ExtraArgs: append([]string{"--unsafe-no-fsync"}, authArgs...)})
	ctx, cancel := context.WithTimeout(context.Background(), 85*time.Second)
	defer cancel()
	compactAt := fillHistory(t, ctx, etcd.Client())
	file := filepath.Join(t.TempDir(), "etcd.db")
	etcd.MustEtcdctl("--user", "root:"+migRootPassword, "snapshot", "save", file)

	restored := filepath.Join(t.TempDir(), "restored")
	out := runTool(t, framework.ServerBinary(t), "snapshot", "restore", file, "--data-dir", restored,
		"--name", "m0", "--initial-cluster", "m0="+migPeerURL, "--initial-advertise-peer-urls", migPeerURL,
		"--initial-cluster-token", "migrated")
	if !strings.Contains(out, "storage version 3.7") {
		t.Fatalf("restore output: %s", out)
	}
	m := framework.Start(t, framework.Options{Name: "m0", ExtraArgs: []string{"--data-dir", restored}})
	compareServers(t, ctx, migClient(t, etcd), migClient(t, m), compactAt, 2)
	userCanRead(t, ctx, m)
	// The restored member goes on from the imported revision.
	c := migClient(t, m)
	before, err := c.Get(ctx, migPrefix+"after")
	check(t, "get", err)
	r, err := c.Put(ctx, migPrefix+"new", "x")
	check(t, "put after restore", err)
	if r.Header.Revision != before.Header.Revision+1 {
		t.Fatalf("first write after restore at revision %d, want %d", r.Header.Revision, before.Header.Revision+1)
	}

	// Every member of a new three-member cluster restored from the same
	// file, as with etcdutl: any member answers as etcd did.
	var dirs []string
	for i := 0; i < 3; i++ {
		d := filepath.Join(t.TempDir(), "restored")
		runTool(t, framework.ServerBinary(t), "snapshot", "restore", file, "--data-dir", d, "--name", fmt.Sprintf("m%d", i))
		dirs = append(dirs, d)
	}
	members := framework.StartCluster(t, 3, framework.Options{MemberOptions: func(i int, o *framework.Options) {
		o.ExtraArgs = append(o.ExtraArgs, "--data-dir", dirs[i])
	}})
	compareServers(t, ctx, migClient(t, etcd), migClient(t, members[2]), compactAt, 2)

	// Bad input, through the binary: each refused with one line.
	data, err := os.ReadFile(file)
	check(t, "read snapshot", err)
	dir := t.TempDir()
	truncated := filepath.Join(dir, "truncated.db")
	check(t, "write", os.WriteFile(truncated, data[:len(data)-4096], 0o600))
	for _, bad := range []struct{ file, want string }{
		{truncated, "sha256 mismatch"},
		{filepath.Join(dir, "missing.db"), "no such file"},
	} {
		b, err := exec.Command(framework.ServerBinary(t), "snapshot", "restore", bad.file, "--data-dir", filepath.Join(dir, "out")).CombinedOutput()
		if err == nil || !strings.Contains(string(b), bad.want) || strings.Count(strings.TrimSpace(string(b)), "\n") != 0 {
			t.Fatalf("restore of %s: %v, output %q, want one line with %q", bad.file, err, b, bad.want)
		}
	}
}

// TestMigrationMetastoreToEtcd: `etcdctl snapshot save` against metastore
// writes a file etcdutl reads and restores into a working etcd with the same
// state.
func TestMigrationMetastoreToEtcd(t *testing.T) {
	onlyAgainstMetastore(t)
	m, c, _ := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	compactAt := fillHistory(t, ctx, c)
	file := filepath.Join(t.TempDir(), "metastore.db")
	m.MustEtcdctl("--user", "root:"+migRootPassword, "snapshot", "save", file)
	status := runTool(t, "etcdutl", "snapshot", "status", file, "-w", "json")
	cur, err := migClient(t, m).Get(ctx, "x")
	check(t, "get", err)
	if !strings.Contains(status, fmt.Sprintf(`"revision":%d`, cur.Header.Revision)) {
		t.Fatalf("etcdutl snapshot status: %s, want revision %d", status, cur.Header.Revision)
	}

	restored := filepath.Join(t.TempDir(), "etcd-restored")
	runTool(t, "etcdutl", "snapshot", "restore", file, "--data-dir", restored, "--name", "e0",
		"--initial-cluster", "e0="+migPeerURL, "--initial-advertise-peer-urls", migPeerURL)
	etcd := framework.Start(t, framework.Options{Name: "e0", Binary: framework.Tool(t, "etcd-ref"), ExtraArgs: []string{"--data-dir", restored}})
	compareServers(t, ctx, migClient(t, m), migClient(t, etcd), compactAt, 2)
	userCanRead(t, ctx, etcd)

	// The same file also restores into metastore.
	restored2 := filepath.Join(t.TempDir(), "restored")
	runTool(t, framework.ServerBinary(t), "snapshot", "restore", file, "--data-dir", restored2, "--name", "m2")
	m2 := framework.Start(t, framework.Options{Name: "m2", ExtraArgs: []string{"--data-dir", restored2}})
	compareServers(t, ctx, migClient(t, m), migClient(t, m2), compactAt, 2)
}

// TestNoMigrationWarningOnFirstStart: a member starting on an empty data dir,
// with no migration under way, must not warn that one is (it did, on every
// first start, until the member had applied the cluster's state), and
// accepts writes.
func TestNoMigrationWarningOnFirstStart(t *testing.T) {
	relMetastoreOnly(t)
	m, c, ctx := setup(t)
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put on a fresh member: %v", err)
	}
	if strings.Contains(m.Logs(), "migration from etcd in progress") {
		t.Fatal("a fresh member with no migration logged that a migration from etcd is in progress")
	}
}
