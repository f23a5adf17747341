package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/tests/framework"
)

// TestCompactHashCheck checks --feature-gates=CompactHashCheck=true with
// --compact-hash-check-time: after one member's copy of a value is damaged
// behind the cluster's back and the cluster compacts, the leader finds that
// member's hash at the compaction revision differs from the majority's and
// raises CORRUPT for it. The periodic whole-store check is off
// (--corrupt-check-time 0), so only the compaction hash check can notice.
func TestCompactHashCheck(t *testing.T) {
	relMetastoreOnly(t)
	ms := framework.StartCluster(t, 3, framework.Options{ExtraArgs: []string{
		"--feature-gates", "CompactHashCheck=true", "--compact-hash-check-time", "200ms",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := ms[0].Client()
	var rev int64
	for _, k := range []string{"a", "b", "victim"} {
		resp, err := c.Put(ctx, k, k+"-compact-hash-value")
		check(t, "put", err)
		rev = resp.Header.Revision
	}
	_, err := ms[2].Client().Get(ctx, "victim")
	check(t, "linearizable read on member 2", err)
	damageValue(t, ms[2], "victim-compact-hash-value")

	_, err = c.Compact(ctx, rev)
	check(t, "compact", err)
	alarms := waitAlarms(t, ctx, c)
	st, err := c.Status(ctx, strings.TrimPrefix(ms[2].ClientURL, "http://"))
	check(t, "status", err)
	if len(alarms) != 1 || alarms[0].Alarm != pb.AlarmType_CORRUPT || alarms[0].MemberID != st.Header.MemberId {
		t.Fatalf("alarms = %v, want CORRUPT for the damaged member %x", alarms, st.Header.MemberId)
	}
}
