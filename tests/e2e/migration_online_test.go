package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/tlsutil/tlstest"
	"github.com/metastore/metastore/tests/framework"
)

const migToken = "migration-secret"

// etcdTLS is a source etcd served over TLS with client certificates.
type etcdTLS struct {
	caFile, certFile, keyFile string
	cfg                       *tls.Config
	serverArgs                []string
}

func newEtcdTLS(t *testing.T) *etcdTLS {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "migration-ca")
	srvCert, srvKey := ca.Issue(t, tlstest.Loopback("etcd")).Write(t, dir, "etcd")
	leaf := ca.Issue(t, tlstest.Names{CN: "root"})
	e := &etcdTLS{caFile: ca.WriteCA(t, dir, "ca"),
		cfg: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS12}}
	e.certFile, e.keyFile = leaf.Write(t, dir, "client")
	e.serverArgs = []string{"--cert-file", srvCert, "--key-file", srvKey, "--trusted-ca-file", e.caFile, "--client-cert-auth"}
	return e
}

// startFromEtcdSnapshot fills a real etcd (over TLS when sec is set),
// snapshots it and starts a cluster of n metastore members, each restored
// from the snapshot in migration mode.
func startFromEtcdSnapshot(t *testing.T, ctx context.Context, n int, sec *etcdTLS) (etcd *framework.Member, ms []*framework.Member, compactAt, snapRev int64) {
	t.Helper()
	opts := framework.Options{Name: "etcd", Binary: framework.Tool(t, "etcd-ref"), ExtraArgs: append([]string{"--unsafe-no-fsync"}, authArgs...)}
	var ctlTLS []string
	if sec != nil {
		opts.ClientScheme, opts.ClientTLS = "https", sec.cfg
		opts.ExtraArgs = append(opts.ExtraArgs, sec.serverArgs...)
		ctlTLS = []string{"--cacert", sec.caFile, "--cert", sec.certFile, "--key", sec.keyFile}
	}
	etcd = framework.Start(t, opts)
	compactAt = fillHistory(t, ctx, etcd.Client())
	file := filepath.Join(t.TempDir(), "etcd.db")
	etcd.MustEtcdctl(append(ctlTLS, "--user", "root:"+migRootPassword, "snapshot", "save", file)...)
	var dirs []string
	for i := 0; i < n; i++ {
		d := filepath.Join(t.TempDir(), "restored")
		runTool(t, framework.ServerBinary(t), "snapshot", "restore", file, "--data-dir", d, "--name", fmt.Sprintf("m%d", i), "--migrate-token", migToken)
		dirs = append(dirs, d)
	}
	ms = framework.StartCluster(t, n, framework.Options{MemberOptions: func(i int, o *framework.Options) {
		o.ExtraArgs = append(o.ExtraArgs, "--data-dir", dirs[i])
	}})
	r, err := migClient(t, ms[0]).Get(ctx, "\x00")
	check(t, "metastore revision", err)
	return etcd, ms, compactAt, r.Header.Revision
}

// clientURLs lists the members' client URLs, comma-separated.
func clientURLs(ms []*framework.Member) string {
	var urls []string
	for _, m := range ms {
		urls = append(urls, m.ClientURL)
	}
	return strings.Join(urls, ",")
}

// follower is a running `metastore migrate follow`.
type follower struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	exited chan error
}

func startFollower(t *testing.T, etcd *framework.Member, ms []*framework.Member, extra ...string) *follower {
	t.Helper()
	f := &follower{exited: make(chan error, 1)}
	f.cmd = exec.Command(framework.ServerBinary(t), append([]string{"migrate", "follow", "--from", etcd.ClientURL, "--to", clientURLs(ms),
		"--token", migToken, "--from-user", "root:" + migRootPassword, "--to-user", "root:" + migRootPassword}, extra...)...)
	f.cmd.Stdout, f.cmd.Stderr = &f.out, &f.out
	check(t, "start follower", f.cmd.Start())
	go func() { f.exited <- f.cmd.Wait() }()
	t.Cleanup(func() {
		_ = f.cmd.Process.Kill()
		<-f.exited
	})
	return f
}

func (f *follower) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-f.exited:
		f.exited <- err
		return err
	case <-time.After(timeout):
		t.Fatalf("the follower did not stop within %v; output:\n%s", timeout, f.out.String())
		return nil
	}
}

// TestMigrationOnlineFollowCutover: a writer keeps writing to etcd while a
// metastore restored from its snapshot follows it; after the cut-over no
// revision is missing or renumbered, and a watcher that read part of the
// history from etcd resumes on metastore with no gap and no duplicate.
func TestMigrationOnlineFollowCutover(t *testing.T) {
	onlyAgainstMetastore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 85*time.Second)
	defer cancel()
	// Three members: the follower's writes reach the leader through any of
	// them, and the cut-over must open every one.
	etcd, ms, compactAt, snapRev := startFromEtcdSnapshot(t, ctx, 3, nil)
	ec, mc := migClient(t, etcd), migClient(t, ms[2])

	// Migration mode: reads are served, client writes refused clearly.
	if _, err := mc.Get(ctx, migPrefix, clientv3.WithPrefix()); err != nil {
		t.Fatalf("read during migration: %v", err)
	}
	_, err := mc.Put(ctx, "client/write", "x")
	if s, _ := status.FromError(err); err == nil || s.Code() != codes.FailedPrecondition || !strings.Contains(err.Error(), "writes are refused until `metastore migrate cutover`") {
		t.Fatalf("client write during migration: %v", err)
	}

	f := startFollower(t, etcd, ms)
	// The writer: single puts, a multi-key txn, deletes, a new lease with
	// keys, and a revoke that deletes its keys in one revision.
	l, err := ec.Grant(ctx, 900)
	check(t, "grant", err)
	gone, err := ec.Grant(ctx, 900)
	check(t, "grant", err)
	for i := 0; i < 40; i++ {
		if i == 20 {
			// A follower killed mid-way is started again and resumes from
			// metastore's revision.
			check(t, "kill follower", f.cmd.Process.Kill())
			_ = f.wait(t, 10*time.Second)
			f = startFollower(t, etcd, ms)
		}
		if i == 30 {
			// A metastore member dies under the follower and comes back:
			// the follower's calls fail over, and the member catches up.
			ms[0].Kill9()
		}
		if i == 35 {
			ms[0].StartAgain()
		}
		key := fmt.Sprintf("%sonline/%02d", migPrefix, i%13)
		switch i % 5 {
		case 0, 1:
			mustPut(t, ec, ctx, key, fmt.Sprintf("v%d", i))
		case 2:
			mustPut(t, ec, ctx, key, fmt.Sprintf("leased-%d", i), clientv3.WithLease(l.ID))
			mustPut(t, ec, ctx, key+"/gone", "x", clientv3.WithLease(gone.ID))
		case 3:
			_, err := ec.Txn(ctx).Then(clientv3.OpPut(key+"/a", "1"), clientv3.OpPut(key+"/b", "2"), clientv3.OpDelete(key)).Commit()
			check(t, "txn", err)
		case 4:
			_, err := ec.Delete(ctx, key, clientv3.WithPrefix())
			check(t, "delete", err)
		}
	}
	// One etcd revision with more changes than a client txn may hold
	// (--max-txn-ops, 128): a revoke that deletes 150 keys.
	for i := 0; i < 150; i++ {
		mustPut(t, ec, ctx, fmt.Sprintf("%sbig/%03d", migPrefix, i), "x", clientv3.WithLease(gone.ID))
	}
	_, err = ec.Revoke(ctx, gone.ID)
	check(t, "revoke", err)
	last, err := ec.Get(ctx, "\x00")
	check(t, "etcd revision", err)
	final := last.Header.Revision
	if final < snapRev+190 {
		t.Fatalf("etcd at %d, snapshot at %d: the writer wrote too little", final, snapRev)
	}
	st, err := exec.CommandContext(ctx, framework.ServerBinary(t), "migrate", "status", "--from", etcd.ClientURL, "--to", clientURLs(ms),
		"--from-user", "root:"+migRootPassword, "--to-user", "root:"+migRootPassword).CombinedOutput()
	if err != nil || !strings.Contains(string(st), fmt.Sprintf("etcd revision %d", final)) || !strings.Contains(string(st), "migrating true") {
		t.Fatalf("migrate status: %v\n%s", err, st)
	}
	mid := snapRev + (final-snapRev)/2
	fromEtcd := watchLines(t, ctx, ec, snapRev+1, mid)

	out, err := exec.CommandContext(ctx, framework.ServerBinary(t), "migrate", "cutover", "--from", etcd.ClientURL, "--to", clientURLs(ms),
		"--token", migToken, "--from-user", "root:"+migRootPassword, "--to-user", "root:"+migRootPassword, "--timeout", "40s").CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("cut over at revision %d", final)) {
		t.Fatalf("cutover: %v\n%s\nfollower:\n%s", err, out, f.out.String())
	}
	if err := f.wait(t, 20*time.Second); err != nil || !strings.Contains(f.out.String(), "cut over") {
		t.Fatalf("follower after the cut-over: %v\n%s", err, f.out.String())
	}

	compareServers(t, ctx, ec, mc, compactAt, 3)
	// The watcher resumes on metastore where it stopped on etcd.
	resumed := append(fromEtcd, watchLines(t, ctx, mc, mid+1, final)...)
	if all := watchLines(t, ctx, ec, snapRev+1, final); !slices.Equal(all, resumed) {
		t.Fatalf("watch across the switch:\netcd     %v\nresumed  %v", all, resumed)
	}
	for i, m := range ms {
		r := mustPut(t, migClient(t, m), ctx, "client/write", "after cutover")
		if r.Header.Revision != final+1+int64(i) {
			t.Fatalf("write %d after the cut-over at revision %d, want %d", i, r.Header.Revision, final+1+int64(i))
		}
	}
}

// TestMigrationOnlineMemberAdded: migration mode is replicated state, so a
// member added with `etcdctl member add` during the follow refuses client
// writes like the restored ones, follows along, and opens at the cut-over.
func TestMigrationOnlineMemberAdded(t *testing.T) {
	onlyAgainstMetastore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	etcd, ms, _, snapRev := startFromEtcdSnapshot(t, ctx, 1, nil)
	ec := migClient(t, etcd)
	f := startFollower(t, etcd, ms)

	nm := framework.NewMember(t, framework.Options{Name: "m-added"})
	out := ms[0].MustEtcdctl("--user", "root:"+migRootPassword, "member", "add", nm.Name, "--peer-urls="+nm.PeerURL)
	if !strings.Contains(out, "ETCD_INITIAL_CLUSTER_STATE=\"existing\"") {
		t.Fatalf("member add:\n%s", out)
	}
	check(t, "start the added member", nm.Join(ms))
	nc := migClient(t, nm)
	// It received the restored state with the Raft snapshot...
	err := framework.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		r, err := nc.Get(ctx, "\x00", clientv3.WithSerializable())
		return err == nil && r.Header.Revision >= snapRev, nil
	})
	check(t, "added member catches up", err)
	// ...and with it migration mode: its client writes are refused.
	_, err = nc.Put(ctx, "client/write", "x")
	if s, _ := status.FromError(err); err == nil || s.Code() != codes.FailedPrecondition || !strings.Contains(err.Error(), "writes are refused until `metastore migrate cutover`") {
		t.Fatalf("client write on the added member during migration: %v", err)
	}
	_, err = nc.Txn(ctx).Then(clientv3.OpDelete(migPrefix, clientv3.WithPrefix())).Commit()
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("client txn on the added member during migration: %v", err)
	}
	// The follow goes on through the grown cluster.
	for i := 0; i < 10; i++ {
		mustPut(t, ec, ctx, fmt.Sprintf("%sadded/%d", migPrefix, i), "v")
	}
	last, err := ec.Get(ctx, "\x00")
	check(t, "etcd revision", err)
	final := last.Header.Revision
	all := append(ms, nm)
	out2, err := exec.CommandContext(ctx, framework.ServerBinary(t), "migrate", "cutover", "--from", etcd.ClientURL, "--to", clientURLs(all),
		"--token", migToken, "--from-user", "root:"+migRootPassword, "--to-user", "root:"+migRootPassword, "--timeout", "40s").CombinedOutput()
	if err != nil || !strings.Contains(string(out2), fmt.Sprintf("cut over at revision %d", final)) {
		t.Fatalf("cutover: %v\n%s\nfollower:\n%s", err, out2, f.out.String())
	}
	if err := f.wait(t, 20*time.Second); err != nil {
		t.Fatalf("follower after the cut-over: %v\n%s", err, f.out.String())
	}
	r, err := nc.Get(ctx, migPrefix+"added/9", clientv3.WithSerializable())
	check(t, "get on the added member", err)
	if len(r.Kvs) != 1 || r.Kvs[0].ModRevision != final {
		t.Fatalf("added member after the cut-over: %v, want mod revision %d", r.Kvs, final)
	}
	if p := mustPut(t, nc, ctx, "client/write", "after cutover"); p.Header.Revision != final+1 {
		t.Fatalf("write on the added member after the cut-over at revision %d, want %d", p.Header.Revision, final+1)
	}
	mustPut(t, migClient(t, ms[0]), ctx, "client/write", "again")
}

// TestMigrationOnlineCompactedPast: when etcd compacted past the restored
// revision, the follower stops with a clear error and applies nothing. The
// source etcd is served over TLS with client certificates, as production
// clusters are, so the follower's --from-cacert/-cert/-key are exercised.
func TestMigrationOnlineCompactedPast(t *testing.T) {
	onlyAgainstMetastore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sec := newEtcdTLS(t)
	etcd, ms, _, snapRev := startFromEtcdSnapshot(t, ctx, 1, sec)
	ec := migClientTLS(t, etcd, sec.cfg)
	var r *clientv3.PutResponse
	for i := 0; i < 3; i++ {
		r = mustPut(t, ec, ctx, migPrefix+"later", fmt.Sprint(i))
	}
	_, err := ec.Compact(ctx, r.Header.Revision)
	check(t, "compact", err)

	f := startFollower(t, etcd, ms, "--from-cacert", sec.caFile, "--from-cert", sec.certFile, "--from-key", sec.keyFile)
	if err := f.wait(t, 30*time.Second); err == nil || !strings.Contains(f.out.String(), "etcd compacted past metastore's revision") {
		t.Fatalf("follower: %v, output:\n%s", err, f.out.String())
	}
	got, err := migClient(t, ms[0]).Get(ctx, "\x00")
	check(t, "metastore revision", err)
	if got.Header.Revision != snapRev {
		t.Fatalf("metastore moved from %d to %d", snapRev, got.Header.Revision)
	}
}
