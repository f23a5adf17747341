package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

// TestForceNewCluster is the recovery after a permanent loss of quorum: two
// of three members are killed, the third restarts with --force-new-cluster
// and serves alone with all its data (keys with their revisions, a lease),
// stays a one-member cluster when restarted without the flag, and grows
// again through member add.
func TestForceNewCluster(t *testing.T) {
	ms := framework.StartCluster(t, 3, framework.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := ms[0].Client()
	survivor := ms[2]
	selfID := memberID(t, ctx, c, survivor.PeerURL)

	lease, err := c.Grant(ctx, 3600)
	check(t, "grant", err)
	revs := map[string]int64{}
	for i := 0; i < 20; i++ {
		k := fmt.Sprintf("k/%02d", i)
		var opts []clientv3.OpOption
		if i == 0 {
			opts = append(opts, clientv3.WithLease(lease.ID))
		}
		revs[k] = mustPut(t, c, ctx, k, "v"+strconv.Itoa(i), opts...).Header.Revision
	}
	mustDel(t, c, ctx, "k/19")
	delete(revs, "k/19")
	last := mustPut(t, c, ctx, "last", "x").Header.Revision
	revs["last"] = last
	// Only what the survivor has can survive: wait until it applied it all.
	sc := survivor.Client()
	err = framework.WaitFor(20*time.Second, 50*time.Millisecond, func() (bool, error) {
		r, err := sc.Get(ctx, "last", clientv3.WithSerializable())
		return err == nil && len(r.Kvs) == 1, nil
	})
	check(t, "survivor catches up", err)

	ms[0].Kill9()
	ms[1].Kill9()
	// The survivor is stopped as an operator would stop it: its commit
	// index, which it learns from the leader and records without fsync, is
	// made durable by the graceful stop (see docs/compatibility.md).
	survivor.Stop()
	survivor.StartAgainWith("--force-new-cluster")
	if ours() && !strings.Contains(survivor.Logs(), "forcing a new one-member cluster") {
		t.Fatalf("no warning about the forced new cluster; log:\n%s", survivor.Logs())
	}

	checkAlone := func(what string) {
		t.Helper()
		sc := survivor.Client()
		st, err := sc.Status(ctx, survivor.ClientURL)
		check(t, what+": status", err)
		if st.Leader != selfID {
			t.Fatalf("%s: leader %x, want the survivor %x", what, st.Leader, selfID)
		}
		r, err := sc.Get(ctx, "", clientv3.WithPrefix())
		check(t, what+": get all", err)
		if len(r.Kvs) != len(revs) {
			t.Fatalf("%s: %d keys, want %d: %v", what, len(r.Kvs), len(revs), keys(r.Kvs))
		}
		for _, kv := range r.Kvs {
			if want, ok := revs[string(kv.Key)]; !ok || kv.ModRevision != want {
				t.Fatalf("%s: key %q at revision %d, want %d", what, kv.Key, kv.ModRevision, want)
			}
		}
		if r.Header.Revision < last {
			t.Fatalf("%s: revision %d, want at least %d", what, r.Header.Revision, last)
		}
		ttl, err := sc.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
		check(t, what+": lease time to live", err)
		if ttl.TTL <= 0 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "k/00" {
			t.Fatalf("%s: lease %x: ttl %d, keys %q", what, lease.ID, ttl.TTL, ttl.Keys)
		}
		var list struct {
			Members []struct {
				ID   uint64 `json:"ID"`
				Name string `json:"name"`
			} `json:"members"`
		}
		out := survivor.MustEtcdctl("member", "list", "-w", "json")
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("%s: member list: %v\n%s", what, err, out)
		}
		if len(list.Members) != 1 || list.Members[0].ID != selfID {
			t.Fatalf("%s: member list, want only %x:\n%s", what, selfID, out)
		}
	}
	checkAlone("after --force-new-cluster")
	for i := 0; i < 5; i++ {
		k := fmt.Sprintf("new/%d", i)
		revs[k] = mustPut(t, survivor.Client(), ctx, k, "n").Header.Revision
	}
	last = revs["new/4"]

	// Without the flag it stays a one-member cluster.
	survivor.Stop()
	survivor.StartAgainWith()
	checkAlone("restarted without the flag")

	// It grows again: a member added at runtime catches up.
	nm := framework.NewMember(t, framework.Options{Name: "m3"})
	survivor.MustEtcdctl("member", "add", "m3", "--peer-urls="+nm.PeerURL)
	if err := nm.Join([]*framework.Member{survivor}); err != nil {
		t.Fatalf("start the added member: %v", err)
	}
	nc := nm.Client()
	err = framework.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		r, err := nc.Get(ctx, "new/4", clientv3.WithSerializable())
		return err == nil && len(r.Kvs) == 1, nil
	})
	check(t, "added member catches up", err)
	r, err := nc.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithSerializable())
	check(t, "get on the added member", err)
	if len(r.Kvs) != len(revs) {
		t.Fatalf("added member has %d keys, want %d", len(r.Kvs), len(revs))
	}
	for _, kv := range r.Kvs {
		if kv.ModRevision != revs[string(kv.Key)] {
			t.Fatalf("added member: key %q at revision %d, want %d", kv.Key, kv.ModRevision, revs[string(kv.Key)])
		}
	}
	mustPut(t, nc, ctx, "through-new-member", "ok")
	ml, err := survivor.Client().MemberList(ctx)
	check(t, "member list", err)
	if len(ml.Members) != 2 {
		t.Fatalf("%d members after the addition, want 2: %v", len(ml.Members), ml.Members)
	}
}
