package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metastore/metastore/tests/framework"
)

// TestMembershipJoinerReplaysRemoval removes a started member, adds a new
// one that catches up by replaying the leader's log (no snapshot: the log
// is short), and checks that every member, the new one included, lists the
// same members. The new member applies the removed member's publish and
// its removal in one batch, where the others applied them apart; the
// removed member must not come back there
// (internal/simcluster/testdata/member_replay shows the raft voter sets
// that diverged from it).
func TestMembershipJoinerReplaysRemoval(t *testing.T) {
	ms := framework.StartCluster(t, 3, framework.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := ms[0].Client()
	removed := memberID(t, ctx, c, ms[2].PeerURL)
	etcdctlOnceHealthy(t, ms[0], "member", "remove", strconv.FormatUint(removed, 16))
	err := framework.WaitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) { return !ms[2].Running(), nil })
	check(t, "removed member stops", err)

	nm := framework.NewMember(t, framework.Options{Name: "m3"})
	etcdctlOnceHealthy(t, ms[0], "member", "add", "m3", "--peer-urls="+nm.PeerURL)
	if err := nm.Join(ms[:2]); err != nil {
		t.Fatalf("start the added member: %v", err)
	}
	if ours() && strings.Contains(nm.Logs(), "installed a snapshot") {
		t.Fatalf("the new member caught up by snapshot, not by replaying the log; its log:\n%s", nm.Logs())
	}
	want := []string{ms[0].Name, ms[1].Name, "m3"}
	for _, m := range []*framework.Member{ms[0], ms[1], nm} {
		// Each member answers from its own list once it has applied the
		// publish of the new member (which it makes before it serves).
		var got []string
		err := framework.WaitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) {
			ml, err := m.Client().MemberList(ctx)
			if err != nil {
				return false, nil
			}
			got = got[:0]
			for _, mb := range ml.Members {
				if mb.ID == removed {
					return false, fmt.Errorf("lists the removed member %x: %v", removed, ml.Members)
				}
				got = append(got, mb.Name)
			}
			slices.Sort(got)
			return slices.Equal(got, want), nil
		})
		if err != nil {
			t.Fatalf("member list on %s: %v (last answer %v, want %v)", m.Name, err, got, want)
		}
	}
	mustPut(t, nm.Client(), ctx, "through-new-member", "ok")
}

// etcdctlOnceHealthy runs a membership change through etcdctl on m, again
// while --strict-reconfig-check refuses it for an unhealthy cluster (every
// member must have been reachable for 5 s).
func etcdctlOnceHealthy(t *testing.T, m *framework.Member, args ...string) {
	t.Helper()
	err := framework.WaitFor(30*time.Second, 250*time.Millisecond, func() (bool, error) {
		r := m.Etcdctl(args...)
		if r.Err != nil && strings.Contains(r.Err.Error(), "unhealthy cluster") {
			return false, nil
		}
		return r.Err == nil, r.Err
	})
	check(t, "etcdctl "+strings.Join(args, " "), err)
}
