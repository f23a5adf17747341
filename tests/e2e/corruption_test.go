package e2e

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/internal/storage"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
	"github.com/metastore/metastore/tests/framework"
)

// TestCorruptMemberRaisesAlarm damages one member's stored value behind
// the cluster's back and checks that the leader's periodic consistency check
// (--corrupt-check-time) notices the divergent HashKV and raises the CORRUPT
// alarm through Raft, after which the cluster refuses KV requests with
// etcd's "corrupt cluster" instead of serving divergent data.
func TestCorruptMemberRaisesAlarm(t *testing.T) {
	relMetastoreOnly(t)
	ms := framework.StartCluster(t, 3, framework.Options{ExtraArgs: []string{"--corrupt-check-time", "300ms"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := ms[0].Client()
	for _, k := range []string{"a", "b", "victim"} {
		_, err := c.Put(ctx, k, k+"-corrupt-me-value")
		check(t, "put", err)
	}
	// Let every member apply the writes, then damage one copy of "victim".
	_, err := ms[2].Client().Get(ctx, "victim")
	check(t, "linearizable read on member 2", err)
	damageValue(t, ms[2], "victim-corrupt-me-value")

	alarms := waitAlarms(t, ctx, c)
	if alarms[0].Alarm != pb.AlarmType_CORRUPT {
		t.Fatalf("alarms = %v, want CORRUPT", alarms)
	}
	st, err := c.Status(ctx, strings.TrimPrefix(ms[2].ClientURL, "http://"))
	check(t, "status", err)
	if alarms[0].MemberID != st.Header.MemberId {
		t.Fatalf("CORRUPT raised for member %x, want the damaged member %x", alarms[0].MemberID, st.Header.MemberId)
	}
	_, err = c.Put(ctx, "after", "x")
	if err == nil || !strings.Contains(err.Error(), "corrupt cluster") {
		t.Fatalf("put under CORRUPT: %v, want etcd's corrupt cluster error", err)
	}
}

// damageValue stops m, flips a bit in the stored version whose value ends
// with suffix, behind the cluster's back, and starts m again.
func damageValue(t *testing.T, m *framework.Member, suffix string) {
	t.Helper()
	m.Stop()
	dir := filepath.Join(m.DataDir, "member", "pebble")
	eng, err := pebbleengine.Open(dir, pebbleengine.Options{})
	check(t, "open the member's data", err)
	it, err := eng.NewIter(storage.IterOptions{LowerBound: storage.PrefixMVCCKey, UpperBound: storage.PrefixEnd(storage.PrefixMVCCKey)})
	check(t, "iterate", err)
	var key, val []byte
	for ok := it.First(); ok; ok = it.Next() {
		if bytes.HasSuffix(it.Value(), []byte(suffix)) {
			key, val = append([]byte(nil), it.Key()...), append([]byte(nil), it.Value()...)
		}
	}
	check(t, "close iterator", it.Close())
	if key == nil {
		t.Fatalf("no version record ending in %q in %s's data", suffix, m.Name)
	}
	val[len(val)-1] ^= 0x01
	b := eng.NewBatch()
	check(t, "stage damage", b.Set(key, val))
	check(t, "commit damage", b.Commit(true))
	check(t, "close", eng.Close())
	m.StartAgain()
}

// waitAlarms polls until the cluster has an alarm and returns the alarms.
func waitAlarms(t *testing.T, ctx context.Context, c *clientv3.Client) []*pb.AlarmMember {
	t.Helper()
	var alarms []*pb.AlarmMember
	err := framework.WaitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) {
		resp, err := c.AlarmList(ctx)
		if err != nil {
			return false, nil
		}
		alarms = resp.Alarms
		return len(alarms) > 0, nil
	})
	check(t, "CORRUPT alarm raised", err)
	return alarms
}
