package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/tests/framework"
)

func authClient(t *testing.T, m *framework.Member, user, pw string) (*clientv3.Client, error) {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.ClientURL},
		DialTimeout: 5 * time.Second,
		Username:    user,
		Password:    pw,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, nil
}

// authArgs: bcrypt's cheapest cost (etcd's own integration tests use it too).
// These tests check who may do what, not hashing strength; at the default
// cost one Authenticate took up to 1.8 s on a loaded 2-core machine, and
// etcdctl's 2 s dial timeout, which covers the authentication, ran out.
var authArgs = []string{"--bcrypt-cost", "4"}

func TestAuthEndToEnd(t *testing.T) {
	m, anon, ctx := setup(t, authArgs...)

	// Set up users and roles before enabling, as etcd requires root first.
	_, err := anon.AuthEnable(ctx)
	requireErr(t, err, rpctypes.ErrRootUserNotExist)
	_, err = anon.UserAdd(ctx, "root", "rootpw")
	check(t, "add root", err)
	_, err = anon.UserGrantRole(ctx, "root", "root")
	check(t, "grant root", err)
	_, err = anon.UserAdd(ctx, "alice", "alicepw")
	check(t, "add alice", err)
	_, err = anon.RoleAdd(ctx, "reader")
	check(t, "add role", err)
	_, err = anon.RoleGrantPermission(ctx, "reader", "pub/", clientv3.GetPrefixRangeEnd("pub/"), clientv3.PermissionType(clientv3.PermRead))
	check(t, "grant perm", err)
	_, err = anon.UserGrantRole(ctx, "alice", "reader")
	check(t, "grant reader", err)
	_, err = anon.AuthEnable(ctx)
	check(t, "enable", err)

	_, err = anon.Get(ctx, "pub/a")
	requireErr(t, err, rpctypes.ErrUserEmpty)
	if _, err := authClient(t, m, "alice", "wrong"); err == nil || !strings.Contains(err.Error(), rpctypes.ErrAuthFailed.Error()) {
		t.Fatalf("wrong password: %v", err)
	}

	root, err := authClient(t, m, "root", "rootpw")
	check(t, "root client", err)
	alice, err := authClient(t, m, "alice", "alicepw")
	check(t, "alice client", err)
	mustPut(t, root, ctx, "pub/a", "1")
	mustPut(t, root, ctx, "secret", "2")

	if r := mustGet(t, alice, ctx, "pub/", clientv3.WithPrefix()); len(r.Kvs) != 1 {
		t.Fatalf("alice prefix get: %v", keys(r.Kvs))
	}
	_, err = alice.Get(ctx, "secret")
	requireErr(t, err, rpctypes.ErrPermissionDenied)
	_, err = alice.Put(ctx, "pub/a", "x")
	requireErr(t, err, rpctypes.ErrPermissionDenied)
	_, err = alice.Txn(ctx).If(clientv3.Compare(clientv3.Value("secret"), "=", "2")).Then(clientv3.OpGet("pub/a")).Commit()
	requireErr(t, err, rpctypes.ErrPermissionDenied)
	_, err = alice.Compact(ctx, 1)
	requireErr(t, err, rpctypes.ErrPermissionDenied)
	_, err = alice.UserList(ctx)
	requireErr(t, err, rpctypes.ErrPermissionDenied)

	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	wr := <-alice.Watch(wctx, "secret")
	if !wr.Canceled || wr.Err() == nil || !strings.Contains(wr.Err().Error(), "permission denied") {
		t.Fatalf("watch of a denied key: canceled=%v reason=%q err=%v", wr.Canceled, wr.CancelReason, wr.Err())
	}

	// The lock service calls this server as its caller.
	lease, err := root.Grant(ctx, 30)
	check(t, "grant", err)
	lr, err := v3lockpb.NewLockClient(root.ActiveConnection()).Lock(ctx, &v3lockpb.LockRequest{Name: []byte("l"), Lease: int64(lease.ID)})
	check(t, "lock as root", err)
	if !strings.HasPrefix(string(lr.Key), "l/") {
		t.Fatalf("lock key %q", lr.Key)
	}

	if code, body, err := m.HTTPGet("/health"); err != nil || code != 200 {
		t.Fatalf("/health with auth enabled: %d %s %v", code, body, err)
	}

	// The JSON gateway: a token from /v3/auth/authenticate in the
	// Authorization header.
	var ar struct{ Token string }
	gatewayPost(t, m, "/v3/auth/authenticate", `{"name":"alice","password":"alicepw"}`, "", &ar)
	if ar.Token == "" {
		t.Fatal("gateway authenticate: empty token")
	}
	var rr struct{ Count string }
	gatewayPost(t, m, "/v3/kv/range", `{"key":"cHViL2E="}`, ar.Token, &rr) // "pub/a"
	if rr.Count != "1" {
		t.Fatalf("gateway range with token: count %q", rr.Count)
	}

	// etcdctl, with --user.
	out := m.MustEtcdctl("--user", "root:rootpw", "user", "list")
	if !strings.Contains(out, "alice") || !strings.Contains(out, "root") {
		t.Fatalf("etcdctl user list: %q", out)
	}
	out = m.MustEtcdctl("--user", "root:rootpw", "role", "get", "reader")
	if !strings.Contains(out, "pub/") {
		t.Fatalf("etcdctl role get: %q", out)
	}
	if r := m.Etcdctl("--user", "alice:alicepw", "put", "secret", "3"); r.Err == nil || !strings.Contains(r.Stderr, "permission denied") {
		t.Fatalf("etcdctl put as alice: %v %q", r.Err, r.Stderr)
	}
	if out := m.MustEtcdctl("--user", "alice:alicepw", "get", "pub/a", "--print-value-only"); strings.TrimSpace(out) != "1" {
		t.Fatalf("etcdctl get as alice: %q", out)
	}

	// Auth state survives a restart.
	m.Restart()
	if r := m.Etcdctl("get", "pub/a"); r.Err == nil || !strings.Contains(r.Stderr, "user name is empty") {
		t.Fatalf("anonymous get after restart: %v %q", r.Err, r.Stderr)
	}
	m.MustEtcdctl("--user", "alice:alicepw", "get", "pub/a")
	m.MustEtcdctl("--user", "root:rootpw", "auth", "disable")
	if out := m.MustEtcdctl("get", "secret", "--print-value-only"); strings.TrimSpace(out) != "2" {
		t.Fatalf("get after disable: %q", out)
	}
}

func gatewayPost(t *testing.T, m *framework.Member, path, body, token string, out any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, m.ClientURL+path, strings.NewReader(body))
	check(t, "request", err)
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	check(t, "POST "+path, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	check(t, "read "+path, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	check(t, "decode "+path, json.Unmarshal(b, out))
}
