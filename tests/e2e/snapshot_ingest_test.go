package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

// TestMemberAddCatchesUpTensOfMB adds a learner to a member holding ~24 MB
// of incompressible values in two MVCC revisions per key: the learner can
// only catch up through a snapshot (the log was compacted long ago). Once
// caught up (its staging directory gone) and promoted, it holds the same
// MVCC state (HashKV at the same revision, every key and value), and the
// state survives kill -9.
func TestMemberAddCatchesUpTensOfMB(t *testing.T) {
	ms := framework.StartCluster(t, 1, framework.Options{ExtraArgs: []string{
		"--snapshot-count", "100", "--snapshot-catchup-entries", "10",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	c := ms[0].Client()

	// 6000 keys of 2 KiB, written twice (12000 versions, ~24 MB), in
	// transactions of 50 puts.
	const keys, valueSize, perTxn = 6000, 2 << 10, 50
	rng := rand.New(rand.NewPCG(11, 17))
	value := func() string {
		b := make([]byte, valueSize)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return string(b)
	}
	want := make(map[string]string, keys)
	for round := 0; round < 2; round++ {
		for i := 0; i < keys; i += perTxn {
			ops := make([]clientv3.Op, 0, perTxn)
			for j := i; j < i+perTxn; j++ {
				k, v := fmt.Sprintf("big/%05d", j), value()
				want[k] = v
				ops = append(ops, clientv3.OpPut(k, v))
			}
			if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
				t.Fatalf("load: %v", err)
			}
		}
	}
	last := mustPut(t, c, ctx, "last", "x")

	nm := framework.NewMember(t, framework.Options{Name: "m1"})
	_, err := c.MemberAddAsLearner(ctx, []string{nm.PeerURL})
	check(t, "member add --learner", err)
	if err := nm.Join(ms); err != nil {
		t.Fatalf("start the added member: %v", err)
	}
	nc := nm.Client()
	err = framework.WaitFor(60*time.Second, 100*time.Millisecond, func() (bool, error) {
		r, err := nc.Get(ctx, "last", clientv3.WithSerializable())
		return err == nil && len(r.Kvs) == 1, nil
	})
	check(t, "learner catches up", err)
	if ours() {
		if !strings.Contains(nm.Logs(), "installed a snapshot") {
			t.Fatalf("the new member caught up without a snapshot; its log:\n%s", nm.Logs())
		}
		if _, err := os.Stat(filepath.Join(nm.DataDir, "member", "raftsnap")); !os.IsNotExist(err) {
			t.Fatalf("staging directory left after the installation: %v", err)
		}
	}

	// HashKV is not served by learners (as in etcd): promote it first.
	add, err := c.MemberList(ctx)
	check(t, "member list", err)
	var newID uint64
	for _, m := range add.Members {
		if m.IsLearner {
			newID = m.ID
		}
	}
	err = framework.WaitFor(30*time.Second, 200*time.Millisecond, func() (bool, error) {
		_, err := c.MemberPromote(ctx, newID)
		if err != nil && strings.Contains(err.Error(), "in sync with leader") {
			return false, nil
		}
		return err == nil, err
	})
	check(t, "member promote", err)

	checkSame := func(nc *clientv3.Client) {
		t.Helper()
		rev := last.Header.Revision
		h0, err := c.HashKV(ctx, strings.TrimPrefix(ms[0].ClientURL, "http://"), rev)
		check(t, "hashkv on the leader", err)
		h1, err := nc.HashKV(ctx, strings.TrimPrefix(nm.ClientURL, "http://"), rev)
		check(t, "hashkv on the learner", err)
		if h0.Hash != h1.Hash || h0.CompactRevision != h1.CompactRevision {
			t.Fatalf("HashKV at %d: leader %d (compacted %d), learner %d (compacted %d)", rev, h0.Hash, h0.CompactRevision, h1.Hash, h1.CompactRevision)
		}
		got := 0
		for from := "big/"; ; {
			r, err := nc.Get(ctx, from, clientv3.WithRange("big0"), clientv3.WithLimit(500), clientv3.WithSerializable())
			check(t, "get on the learner", err)
			for _, kv := range r.Kvs {
				if want[string(kv.Key)] != string(kv.Value) {
					t.Fatalf("learner's %s differs from the last value written", kv.Key)
				}
				got++
			}
			if !r.More {
				break
			}
			from = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
		}
		if got != keys {
			t.Fatalf("learner has %d of %d keys", got, keys)
		}
	}
	checkSame(nc)

	// The installed state is durable.
	nm.Kill9()
	nm.StartAgain()
	checkSame(nm.Client())
}
