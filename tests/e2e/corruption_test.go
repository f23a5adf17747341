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
// etcd's "corrupt cluster" instead of serving divergent data. Whichever
// member leads (the damaged one too, after its restart), the alarm names
// the damaged member.
func TestCorruptMemberRaisesAlarm(t *testing.T) {
	relMetastoreOnly(t)
	ms := framework.StartCluster(t, 3, framework.Options{ExtraArgs: []string{"--corrupt-check-time", "300ms"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := ms[0].Client()
	corruptDamage(t, ctx, c, ms[2])
	ms[2].StartAgain()
	corruptCheckAlarm(t, ctx, c, ms[2])
}

// TestCorruptLeaderRaisesAlarmForItself makes the damaged member the
// leader and the only one that checks: a majority of the members disagrees
// with it, so it raises CORRUPT for itself, never for the healthy members.
func TestCorruptLeaderRaisesAlarmForItself(t *testing.T) {
	relMetastoreOnly(t)
	ms := framework.StartCluster(t, 3, framework.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := ms[0].Client()
	corruptDamage(t, ctx, c, ms[2])
	ms[2].StartAgainWith("--corrupt-check-time", "300ms")

	// Hand leadership to the damaged member, from whoever leads now.
	target, err := ms[2].Client().Status(ctx, strings.TrimPrefix(ms[2].ClientURL, "http://"))
	check(t, "status of the damaged member", err)
	err = framework.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		for _, m := range ms {
			st, err := c.Status(ctx, strings.TrimPrefix(m.ClientURL, "http://"))
			if err != nil {
				return false, nil
			}
			if st.Leader == target.Header.MemberId {
				return true, nil
			}
			if st.Leader == st.Header.MemberId {
				// An error (a leader change under way) is seen on the next poll.
				_, _ = m.Client().MoveLeader(ctx, target.Header.MemberId)
				return false, nil
			}
		}
		return false, nil
	})
	check(t, "the damaged member leads", err)
	corruptCheckAlarm(t, ctx, c, ms[2])
}

// corruptDamage writes a few keys, stops member m once it applied them and
// flips a bit of the stored value of "victim" in its data; m stays stopped.
func corruptDamage(t *testing.T, ctx context.Context, c *clientv3.Client, m *framework.Member) {
	t.Helper()
	for _, k := range []string{"a", "b", "victim"} {
		_, err := c.Put(ctx, k, k+"-corrupt-me-value")
		check(t, "put", err)
	}
	// Let the member apply the writes, then damage its copy of "victim".
	_, err := m.Client().Get(ctx, "victim")
	check(t, "linearizable read on the member to damage", err)
	damageValueStopped(t, m, "victim-corrupt-me-value")
}

// damageValue stops m, flips a bit in the stored version whose value ends
// with suffix, behind the cluster's back, and starts m again.
func damageValue(t *testing.T, m *framework.Member, suffix string) {
	t.Helper()
	damageValueStopped(t, m, suffix)
	m.StartAgain()
}

// damageValueStopped is damageValue without the restart.
func damageValueStopped(t *testing.T, m *framework.Member, suffix string) {
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

// corruptCheckAlarm waits for the CORRUPT alarm and checks it names the
// damaged member only, and that writes are then refused.
func corruptCheckAlarm(t *testing.T, ctx context.Context, c *clientv3.Client, damaged *framework.Member) {
	t.Helper()
	alarms := waitAlarms(t, ctx, c)
	st, err := c.Status(ctx, strings.TrimPrefix(damaged.ClientURL, "http://"))
	check(t, "status", err)
	for _, a := range alarms {
		if a.Alarm != pb.AlarmType_CORRUPT || a.MemberID != st.Header.MemberId {
			t.Fatalf("alarms = %v, want only CORRUPT for the damaged member %x", alarms, st.Header.MemberId)
		}
	}
	_, err = c.Put(ctx, "after", "x")
	if err == nil || !strings.Contains(err.Error(), "corrupt cluster") {
		t.Fatalf("put under CORRUPT: %v, want etcd's corrupt cluster error", err)
	}
}
