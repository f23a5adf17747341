package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/tests/framework"
)

// TestDowngrade drives `etcdctl downgrade validate|enable|cancel` against a
// three-member cluster at 3.7: only 3.6 is a valid target, every refusal
// is etcd's error, enable is replicated (every member's Status shows the
// downgrade, also after a restart), and cancel clears it.
func TestDowngrade(t *testing.T) {
	ms := framework.StartCluster(t, 3, framework.Options{})
	m := ms[0]
	ok := func(args, want string) {
		t.Helper()
		r := m.Etcdctl(strings.Fields(args)...)
		if r.Err != nil || !regexp.MustCompile(want).MatchString(strings.TrimSpace(r.Stdout)) {
			t.Fatalf("etcdctl %s: %v, stdout %q, want %q; stderr %s", args, r.Err, r.Stdout, want, r.Stderr)
		}
	}
	refused := func(args, want string) {
		t.Helper()
		r := m.Etcdctl(strings.Fields(args)...)
		if r.Err == nil || !strings.Contains(r.Stderr, "Error: "+want) {
			t.Fatalf("etcdctl %s: %v, stdout %q, stderr %q; want the error %q", args, r.Err, r.Stdout, r.Stderr, want)
		}
	}
	ok("downgrade validate 3.6", `^Downgrade validate success, cluster version 3\.7$`)
	ok("downgrade validate 3.6.1", `^Downgrade validate success, cluster version 3\.7$`)
	refused("downgrade validate 3.5", "etcdserver: invalid downgrade target version")
	refused("downgrade validate 3.7", "etcdserver: invalid downgrade target version")
	refused("downgrade validate x", "etcdserver: wrong downgrade target version format")
	ok("downgrade cancel", `^Downgrade cancel success, cluster version 3\.7$`) // nothing to cancel: etcd only logs it
	refused("downgrade enable 3.5", "etcdserver: invalid downgrade target version")
	ok("downgrade enable 3.6", `^Downgrade enable success, cluster version 3\.7$`)
	refused("downgrade enable 3.6", "etcdserver: cluster has a downgrade job in progress")
	refused("downgrade validate 3.6", "etcdserver: cluster has a downgrade job in progress")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, o := range ms {
		waitDowngradeInfo(t, ctx, o, &pb.DowngradeInfo{Enabled: true, TargetVersion: "3.6.0"})
	}
	ms[2].Restart()
	waitDowngradeInfo(t, ctx, ms[2], &pb.DowngradeInfo{Enabled: true, TargetVersion: "3.6.0"})

	// etcd lowers its cluster version to the target a moment after enable;
	// metastore keeps 3.7 (no member can run 3.6; docs/adr/0014-downgrade-keeps-cluster-version.md).
	ok("downgrade cancel", `^Downgrade cancel success, cluster version 3\.[67]$`)
	for _, o := range ms {
		waitDowngradeInfo(t, ctx, o, &pb.DowngradeInfo{})
	}
	// clientv3 refuses unknown actions itself: the raw gRPC client does not.
	_, err := pb.NewMaintenanceClient(m.Client().ActiveConnection()).Downgrade(ctx, &pb.DowngradeRequest{Action: 7, Version: "3.6"})
	if status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), "etcdserver: unknown method") {
		t.Errorf("unknown downgrade action: %v, want etcd's Unknown \"etcdserver: unknown method\"", err)
	}
}

func waitDowngradeInfo(t *testing.T, ctx context.Context, m *framework.Member, want *pb.DowngradeInfo) {
	t.Helper()
	var got *pb.DowngradeInfo
	err := framework.WaitFor(20*time.Second, 20*time.Millisecond, func() (bool, error) {
		st, err := m.Client().Status(ctx, m.ClientURL)
		if err != nil {
			return false, nil
		}
		got = st.DowngradeInfo
		return got.GetEnabled() == want.GetEnabled() && got.GetTargetVersion() == want.GetTargetVersion(), nil
	})
	if err != nil {
		t.Fatalf("%s: downgradeInfo %v, want %v", m.Name, got, want)
	}
}
