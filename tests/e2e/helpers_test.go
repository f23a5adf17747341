package e2e

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

// setup starts one member and returns it with a client and a context bounded
// so that a hung server fails the test instead of the whole package.
func setup(t *testing.T, extraArgs ...string) (*framework.Member, *clientv3.Client, context.Context) {
	t.Helper()
	m := framework.Start(t, framework.Options{ExtraArgs: extraArgs})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return m, m.Client(), ctx
}

// requireErr fails unless err is etcd's error want: same value for errors.Is
// (clientv3 maps gRPC statuses to rpctypes errors) or at least the same text.
func requireErr(t *testing.T, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %q", want)
	}
	if !errors.Is(err, want) && err.Error() != want.Error() {
		t.Fatalf("got error %q (%T), want %q", err, err, want)
	}
}

// check fails the test on err; what says which operation failed.
func check(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func keys(kvs []*mvccpb.KeyValue) []string {
	out := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, string(kv.Key))
	}
	return out
}

func mustGet(t *testing.T, c *clientv3.Client, ctx context.Context, key string, opts ...clientv3.OpOption) *clientv3.GetResponse {
	t.Helper()
	r, err := c.Get(ctx, key, opts...)
	check(t, "get "+key, err)
	return r
}

func mustPut(t *testing.T, c *clientv3.Client, ctx context.Context, key, val string, opts ...clientv3.OpOption) *clientv3.PutResponse {
	t.Helper()
	r, err := c.Put(ctx, key, val, opts...)
	check(t, "put "+key, err)
	return r
}

func mustDel(t *testing.T, c *clientv3.Client, ctx context.Context, key string, opts ...clientv3.OpOption) *clientv3.DeleteResponse {
	t.Helper()
	r, err := c.Delete(ctx, key, opts...)
	check(t, "delete "+key, err)
	return r
}
