package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

// TestThreeMemberCluster drives a real three-process cluster: writes through
// any member are seen by all, leases are kept alive through followers (the
// call is forwarded to the leader), the cluster survives kill -9 of its
// leader with every acknowledged write intact, and the killed member catches
// up when it comes back.
func TestThreeMemberCluster(t *testing.T) {
	ms := framework.StartCluster(t, 3, framework.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	clients := make([]*clientv3.Client, len(ms))
	for i, m := range ms {
		clients[i] = m.Client()
	}
	// Every member lists every member with its client URL.
	ml, err := clients[2].MemberList(ctx)
	check(t, "member list", err)
	if len(ml.Members) != 3 {
		t.Fatalf("member list has %d members", len(ml.Members))
	}
	for _, m := range ml.Members {
		if len(m.ClientURLs) != 1 {
			t.Fatalf("member %s has client URLs %v", m.Name, m.ClientURLs)
		}
	}

	var acked []*clientv3.PutResponse
	for i := 0; i < 30; i++ {
		resp, err := clients[i%3].Put(ctx, fmt.Sprintf("c/%02d", i), "v")
		check(t, "put", err)
		acked = append(acked, resp)
	}
	for i, c := range clients {
		resp, err := c.Get(ctx, "c/", clientv3.WithPrefix())
		check(t, "linearizable get", err)
		if len(resp.Kvs) != 30 {
			t.Fatalf("member %d sees %d keys, want 30", i, len(resp.Kvs))
		}
	}

	// Find the leader and a follower.
	leader, follower := -1, -1
	for i, m := range ms {
		st, err := clients[i].Status(ctx, m.ClientURL[len("http://"):])
		check(t, "status", err)
		if st.Leader == st.Header.MemberId {
			leader = i
		} else if follower < 0 {
			follower = i
		}
	}
	if leader < 0 || follower < 0 {
		t.Fatalf("no leader/follower found (leader %d follower %d)", leader, follower)
	}

	// A lease granted and kept alive through a follower.
	lease, err := clients[follower].Grant(ctx, 5)
	check(t, "grant via follower", err)
	ka, err := clients[follower].KeepAliveOnce(ctx, lease.ID)
	check(t, "keep-alive via follower", err)
	if ka.TTL != 5 {
		t.Fatalf("keep-alive through follower TTL %d, want 5", ka.TTL)
	}
	ttl, err := clients[follower].TimeToLive(ctx, lease.ID)
	check(t, "time-to-live via follower", err)
	if ttl.TTL <= 0 || ttl.GrantedTTL != 5 {
		t.Fatalf("time-to-live through follower = %d/%d", ttl.TTL, ttl.GrantedTTL)
	}

	// Kill the leader: the others elect a new one and keep serving writes.
	ms[leader].Kill9()
	other := (leader + 1) % 3
	err = framework.WaitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		defer pcancel()
		_, err := clients[other].Put(pctx, "after-failover", "yes")
		return err == nil, nil
	})
	check(t, "write after leader kill", err)

	// The old leader comes back and catches up, with every acknowledged write.
	ms[leader].StartAgain()
	c := ms[leader].Client()
	err = framework.WaitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) {
		resp, err := c.Get(ctx, "after-failover", clientv3.WithSerializable())
		return err == nil && len(resp.Kvs) == 1, nil
	})
	check(t, "restarted member catches up", err)
	resp, err := c.Get(ctx, "c/", clientv3.WithPrefix(), clientv3.WithSerializable())
	check(t, "get on restarted member", err)
	if len(resp.Kvs) != 30 {
		t.Fatalf("restarted member has %d of 30 acknowledged keys", len(resp.Kvs))
	}
	for i, kv := range resp.Kvs {
		if kv.ModRevision != acked[i].Header.Revision {
			t.Fatalf("%s mod revision %d, acknowledged at %d", kv.Key, kv.ModRevision, acked[i].Header.Revision)
		}
	}
	// HashKV agrees on every member at the same revision.
	rev := resp.Header.Revision
	var hashes []uint32
	for i, m := range ms {
		cl := clients[i]
		if i == leader {
			cl = c
		}
		h, err := cl.HashKV(ctx, m.ClientURL[len("http://"):], rev)
		check(t, "hashkv", err)
		hashes = append(hashes, h.Hash)
	}
	if hashes[0] != hashes[1] || hashes[1] != hashes[2] {
		t.Fatalf("HashKV at %d differs between members: %v", rev, hashes)
	}
}
