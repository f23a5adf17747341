package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	epb "go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"

	"github.com/metastore/metastore/tests/framework"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestLeaseClientAPI covers grant, keep-alive, time-to-live, leases and
// revoke through clientv3, with etcd's answers for the edge cases.
func TestLeaseClientAPI(t *testing.T) {
	m := framework.Start(t, framework.Options{})
	c := m.Client()
	ctx := testCtx(t, 30*time.Second)

	g, err := c.Grant(ctx, 60)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	if g.ID <= 0 || g.TTL != 60 {
		t.Fatalf("grant chose ID %d TTL %d, want a positive ID and TTL 60", g.ID, g.TTL)
	}
	// A chosen ID, the minimum TTL, and an ID that exists.
	if g2, err := c.Grant(ctx, 1); err != nil || g2.TTL != 2 {
		t.Fatalf("grant ttl 1: %v, %v; want TTL raised to 2", g2, err)
	}
	if _, err := c.Grant(ctx, 9_000_000_001); !errors.Is(err, rpctypes.ErrLeaseTTLTooLarge) {
		t.Fatalf("grant too large TTL: %v", err)
	}
	if _, err := c.Put(ctx, "probe", "x"); err != nil {
		t.Fatal(err)
	}

	put, err := c.Put(ctx, "k1", "v", clientv3.WithLease(g.ID))
	if err != nil {
		t.Fatalf("put with lease: %v", err)
	}
	if _, err := c.Put(ctx, "k2\x00bin", "v", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "k3", "v", clientv3.WithLease(12345)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("put with unknown lease: %v, want %v", err, rpctypes.ErrLeaseNotFound)
	}
	if get, _ := c.Get(ctx, "k1"); len(get.Kvs) != 1 || get.Kvs[0].Lease != int64(g.ID) {
		t.Fatalf("k1 = %v, want lease %x", get.Kvs, g.ID)
	}

	ttl, err := c.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatal(err)
	}
	if ttl.GrantedTTL != 60 || ttl.TTL < 55 || ttl.TTL > 60 {
		t.Fatalf("timetolive: granted %d remaining %d", ttl.GrantedTTL, ttl.TTL)
	}
	if got := fmt.Sprintf("%q", ttl.Keys); got != `["k1" "k2\x00bin"]` {
		t.Fatalf("attached keys %s", got)
	}

	ka, err := c.KeepAliveOnce(ctx, g.ID)
	if err != nil || ka.TTL != 60 || ka.ID != g.ID {
		t.Fatalf("keepalive once: %+v, %v", ka, err)
	}

	ls, err := c.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []clientv3.LeaseID
	for _, l := range ls.Leases {
		ids = append(ids, l.ID)
	}
	if !slices.Contains(ids, g.ID) || len(ids) != 2 {
		t.Fatalf("leases %v, want 2 including %x", ids, g.ID)
	}

	// A put without a lease detaches the key.
	if _, err := c.Put(ctx, "k2\x00bin", "v2"); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := c.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys()); len(ttl.Keys) != 1 {
		t.Fatalf("keys after detach %q", ttl.Keys)
	}

	// Revoke: the attached keys go in one revision, watchers get one response.
	w := c.Watch(ctx, "k", clientv3.WithPrefix(), clientv3.WithRev(put.Header.Revision+3))
	if _, err := c.Put(ctx, "k1b", "v", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	rev, err := c.Revoke(ctx, g.ID)
	if err != nil {
		t.Fatalf("revoke: %v", err)
	}
	for wr := range w {
		if err := wr.Err(); err != nil {
			t.Fatal(err)
		}
		if len(wr.Events) == 1 && wr.Events[0].Type == mvccpb.PUT {
			continue // k1b
		}
		if len(wr.Events) != 2 || wr.Events[0].Kv.ModRevision != rev.Header.Revision ||
			wr.Events[1].Kv.ModRevision != rev.Header.Revision {
			t.Fatalf("revoke watch response %v, want 2 deletes at revision %d", wr.Events, rev.Header.Revision)
		}
		break
	}
	if get, _ := c.Get(ctx, "k", clientv3.WithPrefix()); len(get.Kvs) != 1 || string(get.Kvs[0].Key) != "k2\x00bin" {
		t.Fatalf("after revoke %v, want only the detached key", get.Kvs)
	}
	if ttl, err := c.TimeToLive(ctx, g.ID); err != nil || ttl.TTL != -1 {
		t.Fatalf("timetolive of a revoked lease: %+v, %v; want TTL -1", ttl, err)
	}
	if ka, err := c.KeepAliveOnce(ctx, g.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("keepalive of a revoked lease: %+v, %v", ka, err)
	}
	if _, err := c.Revoke(ctx, g.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("second revoke: %v", err)
	}

	// Revoking a lease without keys keeps the revision.
	g3, err := c.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := c.Get(ctx, "probe")
	if _, err := c.Revoke(ctx, g3.ID); err != nil {
		t.Fatal(err)
	}
	after, _ := c.Get(ctx, "probe")
	if after.Header.Revision != before.Header.Revision {
		t.Fatalf("revoking a keyless lease moved the revision %d -> %d", before.Header.Revision, after.Header.Revision)
	}
}

// TestLeaseGrantExistingID uses the raw API: clientv3's Grant never sends an ID.
func TestLeaseGrantExistingID(t *testing.T) {
	m := framework.Start(t, framework.Options{})
	c := m.Client()
	ctx := testCtx(t, 30*time.Second)
	lc := clientv3.RetryLeaseClient(c)
	if _, err := lc.LeaseGrant(ctx, leaseGrant(777, 10)); err != nil {
		t.Fatal(err)
	}
	_, err := lc.LeaseGrant(ctx, leaseGrant(777, 10))
	if err == nil || rpctypes.ErrorDesc(err) != rpctypes.ErrLeaseExist.Error() {
		t.Fatalf("grant of an existing ID: %v, want %q", err, rpctypes.ErrLeaseExist)
	}
}

// TestLeaseKeepAliveStream checks the keep-alive stream keeps a short lease
// alive well past its TTL.
func TestLeaseKeepAliveStream(t *testing.T) {
	m := framework.Start(t, framework.Options{})
	c := m.Client()
	ctx := testCtx(t, 30*time.Second)
	g, err := c.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	ch, err := c.KeepAlive(kctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	// clientv3 renews every TTL/3: 5 responses span > 2 × TTL.
	start := time.Now()
	for i := 0; i < 5; i++ {
		select {
		case r, ok := <-ch:
			if !ok {
				t.Fatalf("keep-alive channel closed after %d responses", i)
			}
			if r.TTL != 2 {
				t.Fatalf("keep-alive TTL %d, want 2", r.TTL)
			}
		case <-ctx.Done():
			t.Fatal("no keep-alive response")
		}
	}
	if time.Since(start) < 2*time.Second {
		t.Logf("5 keep-alives in %v", time.Since(start))
	}
	if ttl, err := c.TimeToLive(ctx, g.ID); err != nil || ttl.TTL < 0 {
		t.Fatalf("lease died while kept alive: %+v %v", ttl, err)
	}
}

// TestLeaseExpiry: keys disappear within about a second after the TTL.
func TestLeaseExpiry(t *testing.T) {
	m := framework.Start(t, framework.Options{})
	c := m.Client()
	ctx := testCtx(t, 30*time.Second)
	g, err := c.Grant(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	put, err := c.Put(ctx, "expiring", "v", clientv3.WithLease(g.ID))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Watch(ctx, "expiring", clientv3.WithRev(put.Header.Revision+1))
	select {
	case wr := <-w:
		if len(wr.Events) != 1 || wr.Events[0].Type != mvccpb.DELETE {
			t.Fatalf("watch got %v, want the delete", wr.Events)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("key still there 10 s after a 3 s lease was granted")
	}
	took := time.Since(granted)
	if took < 3*time.Second || took > 4500*time.Millisecond {
		t.Fatalf("key deleted %v after grant, want 3 s .. ~4.5 s", took)
	}
	if ttl, err := c.TimeToLive(ctx, g.ID); err != nil || ttl.TTL != -1 {
		t.Fatalf("expired lease: %+v %v", ttl, err)
	}
}

// TestLeaseSurvivesKill9: leases and their keys survive a crash; the lease
// keeps at most its granted TTL (plus the election-timeout extension etcd
// gives on promotion) and still expires afterwards.
func TestLeaseSurvivesKill9(t *testing.T) {
	m := framework.Start(t, framework.Options{})
	c := m.Client()
	ctx := testCtx(t, 60*time.Second)
	long, err := c.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	short, err := c.Grant(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "long", "v", clientv3.WithLease(long.ID)); err != nil {
		t.Fatal(err)
	}
	put, err := c.Put(ctx, "short", "v", clientv3.WithLease(short.ID))
	if err != nil {
		t.Fatal(err)
	}
	m.Kill9()
	m.StartAgain()

	ttl, err := c.TimeToLive(ctx, long.ID, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatal(err)
	}
	if ttl.GrantedTTL != 600 || ttl.TTL <= 0 || ttl.TTL > 601 || len(ttl.Keys) != 1 {
		t.Fatalf("long lease after kill -9: %+v", ttl)
	}
	if get, _ := c.Get(ctx, "long"); len(get.Kvs) != 1 || get.Kvs[0].Lease != int64(long.ID) {
		t.Fatalf("long key after kill -9: %v", get.Kvs)
	}
	// The short lease still expires, and its key with it.
	w := c.Watch(ctx, "short", clientv3.WithRev(put.Header.Revision+1))
	select {
	case wr := <-w:
		if len(wr.Events) != 1 || wr.Events[0].Type != mvccpb.DELETE {
			t.Fatalf("watch got %v %v", wr.Events, wr.Err())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("short lease did not expire after restart")
	}
}

var grantRe = regexp.MustCompile(`lease ([0-9a-f]+) granted with TTL\((\d+)s\)`)

func leaseGrant(id, ttl int64) *pb.LeaseGrantRequest { return &pb.LeaseGrantRequest{ID: id, TTL: ttl} }

// TestLeaseEtcdctl drives the lease commands of the real etcdctl.
func TestLeaseEtcdctl(t *testing.T) {
	m := framework.Start(t, framework.Options{})
	out := m.MustEtcdctl("lease", "grant", "100")
	mm := grantRe.FindStringSubmatch(out)
	if mm == nil || mm[2] != "100" {
		t.Fatalf("lease grant printed %q", out)
	}
	id := mm[1]
	if out := m.MustEtcdctl("put", "--lease="+id, "foo", "bar"); strings.TrimSpace(out) != "OK" {
		t.Fatalf("put --lease printed %q", out)
	}
	out = m.MustEtcdctl("lease", "timetolive", id, "--keys")
	if !strings.Contains(out, "granted with TTL(100s)") || !strings.Contains(out, "attached keys([foo])") {
		t.Fatalf("timetolive --keys printed %q", out)
	}
	out = m.MustEtcdctl("lease", "list")
	if !strings.Contains(out, "found 1 leases") || !strings.Contains(out, id) {
		t.Fatalf("lease list printed %q", out)
	}
	out = m.MustEtcdctl("lease", "keep-alive", "--once", id)
	if !strings.Contains(out, "keepalived with TTL(100)") {
		t.Fatalf("keep-alive --once printed %q", out)
	}
	out = m.MustEtcdctl("lease", "revoke", id)
	if !strings.Contains(out, "lease "+id+" revoked") {
		t.Fatalf("revoke printed %q", out)
	}
	if out := m.MustEtcdctl("get", "foo"); out != "" {
		t.Fatalf("foo survived the revoke: %q", out)
	}
	out = m.MustEtcdctl("lease", "timetolive", id)
	if !strings.Contains(out, "already expired") {
		t.Fatalf("timetolive of a revoked lease printed %q", out)
	}
	if r := m.Etcdctl("put", "--lease=1234abcd", "foo", "bar"); r.Err == nil || !strings.Contains(r.Stderr, "requested lease not found") {
		t.Fatalf("put with an unknown lease: %v %q", r.Err, r.Stderr)
	}
}

// proc is a long-running etcdctl whose output lines are read as they come.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

func startEtcdctl(t *testing.T, m *framework.Member, args ...string) *proc {
	t.Helper()
	bin := framework.Tool(t, "etcdctl")
	cmd := exec.Command(bin, append([]string{"--endpoints=" + m.ClientURL}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 64), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// expect waits for a line satisfying ok.
func (p *proc) expect(t *testing.T, what string, ok func(string) bool, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, open := <-p.lines:
			if !open {
				t.Fatalf("etcdctl exited before printing %s", what)
			}
			if ok(l) {
				return l
			}
		case <-deadline:
			t.Fatalf("etcdctl did not print %s within %v", what, timeout)
		}
	}
}

// quiet checks that no line arrives for d: the process is blocked.
func (p *proc) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case l, open := <-p.lines:
		if open {
			t.Fatalf("blocked etcdctl printed %q", l)
		}
		t.Fatal("blocked etcdctl exited")
	case <-time.After(d):
	}
}

func (p *proc) interrupt(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("etcdctl did not exit on SIGINT")
	}
}

// TestEtcdctlLock: two etcdctl lock processes compete for one lock.
func TestEtcdctlLock(t *testing.T) {
	m := framework.Start(t, framework.Options{})
	a := startEtcdctl(t, m, "lock", "mylock")
	keyA := a.expect(t, "the lock key", func(l string) bool { return strings.HasPrefix(l, "mylock/") }, 15*time.Second)
	b := startEtcdctl(t, m, "lock", "mylock", "echo", "b-holds-it")
	// b waits behind a: its own key exists, its command does not run.
	c := m.Client()
	ctx := testCtx(t, 30*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		get, err := c.Get(ctx, "mylock/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if len(get.Kvs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiter's key never appeared: %v", get.Kvs)
		}
		time.Sleep(50 * time.Millisecond) // polling another process, bounded by the deadline
	}
	b.quiet(t, 500*time.Millisecond)
	a.interrupt(t)
	b.expect(t, "the command's output", func(l string) bool { return l == "b-holds-it" }, 15*time.Second)
	if get, _ := c.Get(ctx, keyA); len(get.Kvs) != 0 {
		t.Fatalf("a's key %q survived its unlock", keyA)
	}
}

// TestEtcdctlElect: two candidates and an observer.
func TestEtcdctlElect(t *testing.T) {
	m := framework.Start(t, framework.Options{})
	p1 := startEtcdctl(t, m, "elect", "myelection", "p1")
	p1.expect(t, "p1's proposal", func(l string) bool { return l == "p1" }, 15*time.Second)
	obs := startEtcdctl(t, m, "elect", "-l", "myelection")
	obs.expect(t, "leader p1", func(l string) bool { return l == "p1" }, 15*time.Second)
	p2 := startEtcdctl(t, m, "elect", "myelection", "p2")
	p2.quiet(t, 500*time.Millisecond)
	p1.interrupt(t)
	p2.expect(t, "p2's proposal", func(l string) bool { return l == "p2" }, 15*time.Second)
	obs.expect(t, "leader p2", func(l string) bool { return l == "p2" }, 15*time.Second)
}

// TestConcurrencyPackage runs clientv3's Mutex, Election and STM.
func TestConcurrencyPackage(t *testing.T) {
	m := framework.Start(t, framework.Options{})
	c := m.Client()
	ctx := testCtx(t, 60*time.Second)

	t.Run("Mutex", func(t *testing.T) {
		s1, err := concurrency.NewSession(c, concurrency.WithTTL(5))
		if err != nil {
			t.Fatal(err)
		}
		defer s1.Close()
		s2, err := concurrency.NewSession(c, concurrency.WithTTL(5))
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		m1, m2 := concurrency.NewMutex(s1, "/mtx"), concurrency.NewMutex(s2, "/mtx")
		if err := m1.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m2.TryLock(ctx); !errors.Is(err, concurrency.ErrLocked) {
			t.Fatalf("TryLock on a held mutex: %v", err)
		}
		got := make(chan error, 1)
		go func() { got <- m2.Lock(ctx) }()
		select {
		case err := <-got:
			t.Fatalf("second Lock returned while held: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		if err := m1.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		// A holder whose session dies (lease revoked) loses the lock.
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m1.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		_ = m1.Unlock(ctx)
	})

	t.Run("Election", func(t *testing.T) {
		s1, err := concurrency.NewSession(c, concurrency.WithTTL(5))
		if err != nil {
			t.Fatal(err)
		}
		defer s1.Close()
		s2, err := concurrency.NewSession(c, concurrency.WithTTL(5))
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		e1, e2 := concurrency.NewElection(s1, "/el"), concurrency.NewElection(s2, "/el")
		if err := e1.Campaign(ctx, "one"); err != nil {
			t.Fatal(err)
		}
		l, err := e2.Leader(ctx)
		if err != nil || string(l.Kvs[0].Value) != "one" {
			t.Fatalf("leader: %v %v", l, err)
		}
		won := make(chan error, 1)
		go func() { won <- e2.Campaign(ctx, "two") }()
		if err := e1.Proclaim(ctx, "uno"); err != nil {
			t.Fatal(err)
		}
		if l, _ := e2.Leader(ctx); string(l.Kvs[0].Value) != "uno" {
			t.Fatalf("after proclaim: %v", l.Kvs)
		}
		if err := e1.Resign(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-won; err != nil {
			t.Fatal(err)
		}
		if l, _ := e1.Leader(ctx); string(l.Kvs[0].Value) != "two" {
			t.Fatalf("after resign: %v", l.Kvs)
		}
	})

	t.Run("STM", func(t *testing.T) {
		if _, err := c.Put(ctx, "acct/a", "100"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(ctx, "acct/b", "0"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 10)
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := concurrency.NewSTM(c, func(s concurrency.STM) error {
					a, _ := strconv.Atoi(s.Get("acct/a"))
					b, _ := strconv.Atoi(s.Get("acct/b"))
					s.Put("acct/a", strconv.Itoa(a-10))
					s.Put("acct/b", strconv.Itoa(b+10))
					return nil
				}, concurrency.WithAbortContext(ctx))
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		get, err := c.Get(ctx, "acct/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if len(get.Kvs) != 2 || string(get.Kvs[0].Value) != "0" || string(get.Kvs[1].Value) != "100" {
			t.Fatalf("after 10 transfers: %v", get.Kvs)
		}
	})
}

// TestLockElectionServices calls the v3lock and v3election gRPC services.
func TestLockElectionServices(t *testing.T) {
	m := framework.Start(t, framework.Options{})
	c := m.Client()
	ctx := testCtx(t, 60*time.Second)
	lk := v3lockpb.NewLockClient(c.ActiveConnection())
	el := epb.NewElectionClient(c.ActiveConnection())

	g1, err := c.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := c.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	l1, err := lk.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("svc-lock"), Lease: int64(g1.ID)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(l1.Key), "svc-lock/") || l1.Header.Revision == 0 {
		t.Fatalf("lock response %v", l1)
	}
	// Locking again with the same lease is a no-op: same key.
	again, err := lk.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("svc-lock"), Lease: int64(g1.ID)})
	if err != nil || string(again.Key) != string(l1.Key) {
		t.Fatalf("relock with the same lease: %v %v", again, err)
	}
	got := make(chan *v3lockpb.LockResponse, 1)
	go func() {
		r, err := lk.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("svc-lock"), Lease: int64(g2.ID)})
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	select {
	case <-got:
		t.Fatal("second holder got the lock while held")
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := lk.Unlock(ctx, &v3lockpb.UnlockRequest{Key: l1.Key}); err != nil {
		t.Fatal(err)
	}
	l2 := <-got
	if l2 == nil || string(l2.Key) == string(l1.Key) {
		t.Fatalf("second lock %v", l2)
	}
	// Revoking the holder's lease releases the lock too.
	if _, err := c.Revoke(ctx, g2.ID); err != nil {
		t.Fatal(err)
	}

	// Election.
	g3, err := c.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := el.Leader(ctx, &epb.LeaderRequest{Name: []byte("svc-el")}); err == nil ||
		!strings.Contains(err.Error(), concurrency.ErrElectionNoLeader.Error()) {
		t.Fatalf("leader of an empty election: %v", err)
	}
	obs, err := el.Observe(ctx, &epb.LeaderRequest{Name: []byte("svc-el")})
	if err != nil {
		t.Fatal(err)
	}
	camp, err := el.Campaign(ctx, &epb.CampaignRequest{Name: []byte("svc-el"), Lease: int64(g3.ID), Value: []byte("v1")})
	if err != nil {
		t.Fatal(err)
	}
	if camp.Leader.Lease != int64(g3.ID) || string(camp.Leader.Name) != "svc-el" {
		t.Fatalf("campaign %v", camp)
	}
	if o, err := obs.Recv(); err != nil || string(o.Kv.Value) != "v1" {
		t.Fatalf("observe: %v %v", o, err)
	}
	if _, err := el.Proclaim(ctx, &epb.ProclaimRequest{Leader: camp.Leader, Value: []byte("v2")}); err != nil {
		t.Fatal(err)
	}
	if o, err := obs.Recv(); err != nil || string(o.Kv.Value) != "v2" {
		t.Fatalf("observe after proclaim: %v %v", o, err)
	}
	lr, err := el.Leader(ctx, &epb.LeaderRequest{Name: []byte("svc-el")})
	if err != nil || string(lr.Kv.Value) != "v2" {
		t.Fatalf("leader: %v %v", lr, err)
	}
	if _, err := el.Proclaim(ctx, &epb.ProclaimRequest{Value: []byte("x")}); err == nil ||
		!strings.Contains(err.Error(), `"leader" field must be provided`) {
		t.Fatalf("proclaim without leader: %v", err)
	}
	if _, err := el.Resign(ctx, &epb.ResignRequest{Leader: camp.Leader}); err != nil {
		t.Fatal(err)
	}
	if _, err := el.Leader(ctx, &epb.LeaderRequest{Name: []byte("svc-el")}); err == nil {
		t.Fatal("leader after resign")
	}
}

// BenchmarkLeaseKeepAlive measures keep-alive round trips through gRPC, one
// LeaseKeepAlive stream per parallel client.
func BenchmarkLeaseKeepAlive(b *testing.B) {
	m := framework.Start(b, framework.Options{})
	c := m.Client()
	ctx := context.Background()
	g, err := c.Grant(ctx, 600)
	if err != nil {
		b.Fatal(err)
	}
	lc := pb.NewLeaseClient(c.ActiveConnection())
	b.ResetTimer()
	b.RunParallel(func(pbt *testing.PB) {
		stream, err := lc.LeaseKeepAlive(ctx)
		if err != nil {
			b.Error(err)
			return
		}
		defer func() { _ = stream.CloseSend() }()
		for pbt.Next() {
			if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(g.ID)}); err != nil {
				b.Error(err)
				return
			}
			r, err := stream.Recv()
			if err != nil || r.TTL != 600 {
				b.Errorf("keep-alive: %v %v", r, err)
				return
			}
		}
	})
}

// BenchmarkLeaseGrant measures grants through gRPC, Raft and apply.
func BenchmarkLeaseGrant(b *testing.B) {
	m := framework.Start(b, framework.Options{})
	c := m.Client()
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pbt *testing.PB) {
		for pbt.Next() {
			if _, err := c.Grant(ctx, 600); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
