package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"

	"github.com/metastore/metastore/tests/framework"
)

// TestMembershipChanges grows a three-member cluster with a learner through
// etcdctl (member add --learner, start it with --initial-cluster-state
// existing: it catches up by snapshot, member promote through a follower),
// checks etcd's error for each refused change, then removes the new member,
// whose process stops by itself, and the cluster goes on.
func TestMembershipChanges(t *testing.T) {
	ms := framework.StartCluster(t, 3, framework.Options{ExtraArgs: []string{
		"--snapshot-count", "50", "--snapshot-catchup-entries", "10",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	// ms[1] serves the changes: the strict check is made by the member
	// that serves the call, and etcdctl waits below until it passes there.
	c := ms[1].Client()
	for i := 0; i < 120; i++ {
		mustPut(t, c, ctx, fmt.Sprintf("k/%03d", i), "v")
	}

	nm := framework.NewMember(t, framework.Options{Name: "m3"})
	// With --strict-reconfig-check (the default), adding waits until every
	// member has been reachable for 5 s.
	var addOut string
	err := framework.WaitFor(30*time.Second, 250*time.Millisecond, func() (bool, error) {
		r := ms[1].Etcdctl("member", "add", "m3", "--learner", "--peer-urls="+nm.PeerURL)
		if r.Err != nil {
			if strings.Contains(r.Err.Error(), "unhealthy cluster") {
				return false, nil
			}
			return false, r.Err
		}
		addOut = r.Stdout
		return true, nil
	})
	check(t, "etcdctl member add --learner", err)
	if !strings.Contains(addOut, "ETCD_INITIAL_CLUSTER_STATE=\"existing\"") {
		t.Fatalf("member add output:\n%s", addOut)
	}
	newID := memberID(t, ctx, c, nm.PeerURL)

	// Refused changes, each with etcd's error.
	// A different ID (the URL set differs), one URL taken.
	_, err = c.MemberAdd(ctx, []string{nm.PeerURL, "http://127.0.0.1:2"})
	requireErr(t, err, rpctypes.ErrPeerURLExist)
	// clientv3 checks URLs itself: call the service directly.
	_, err = pb.NewClusterClient(c.ActiveConnection()).MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1"}})
	requireErr(t, err, rpctypes.ErrGRPCMemberBadURLs)
	_, err = c.MemberAddAsLearner(ctx, []string{"http://127.0.0.1:1"})
	requireErr(t, err, rpctypes.ErrTooManyLearners)
	_, err = c.MemberRemove(ctx, 0xdead)
	requireErr(t, err, rpctypes.ErrMemberNotFound)
	_, err = c.MemberUpdate(ctx, 0xdead, []string{"http://127.0.0.1:1"})
	requireErr(t, err, rpctypes.ErrMemberNotFound)
	_, err = c.MemberUpdate(ctx, newID, []string{ms[0].PeerURL})
	requireErr(t, err, rpctypes.ErrPeerURLExist)
	_, err = c.MemberPromote(ctx, memberID(t, ctx, c, ms[2].PeerURL))
	requireErr(t, err, rpctypes.ErrMemberNotLearner)
	_, err = c.MemberPromote(ctx, newID) // not started: far behind the leader
	requireErr(t, err, rpctypes.Error(rpctypes.ErrGRPCLearnerNotReady))

	// The new member starts, catches up through a snapshot (the log was
	// compacted long ago) and serves serializable reads as a learner.
	if err := nm.Join(ms); err != nil {
		t.Fatalf("start the added member: %v", err)
	}
	if ours() && !strings.Contains(nm.Logs(), "installed a snapshot") {
		t.Fatalf("the new member caught up without a snapshot; its log:\n%s", nm.Logs())
	}
	nc := nm.Client()
	last := mustPut(t, c, ctx, "last", "x")
	err = framework.WaitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) {
		r, err := nc.Get(ctx, "last", clientv3.WithSerializable())
		return err == nil && len(r.Kvs) == 1, nil
	})
	check(t, "learner catches up", err)
	r, err := nc.Get(ctx, "k/", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
	check(t, "get on learner", err)
	if r.Count != 120 || r.Header.Revision < last.Header.Revision {
		t.Fatalf("learner has %d keys at revision %d", r.Count, r.Header.Revision)
	}
	checkLearnerRefuses(t, ctx, nc)
	list := ms[2].MustEtcdctl("member", "list", "-w", "json")
	if !strings.Contains(list, `"name":"m3"`) || !strings.Contains(list, `"isLearner":true`) {
		t.Fatalf("member list after the learner started:\n%s", list)
	}
	// etcdctl member update with its own URL is accepted.
	ms[0].MustEtcdctl("member", "update", strconv.FormatUint(newID, 16), "--peer-urls="+nm.PeerURL)

	// Promotion through a member that may not lead: it is forwarded to the
	// leader, which knows whether the learner caught up.
	err = framework.WaitFor(20*time.Second, 200*time.Millisecond, func() (bool, error) {
		r := ms[2].Etcdctl("member", "promote", strconv.FormatUint(newID, 16))
		if r.Err != nil && strings.Contains(r.Err.Error(), "in sync with leader") {
			return false, nil
		}
		return r.Err == nil, r.Err
	})
	check(t, "etcdctl member promote", err)
	ml, err := c.MemberList(ctx)
	check(t, "member list", err)
	if len(ml.Members) != 4 {
		t.Fatalf("%d members after promotion", len(ml.Members))
	}
	for _, m := range ml.Members {
		if m.IsLearner {
			t.Fatalf("member %s is still a learner", m.Name)
		}
	}
	// The promotion is committed when MemberPromote returns, but the new
	// member serves as a voter only once it has applied it (in etcd too):
	// wait for its own Status to say so.
	err = framework.WaitFor(20*time.Second, 50*time.Millisecond, func() (bool, error) {
		st, err := nc.Status(ctx, strings.TrimPrefix(nm.ClientURL, "http://"))
		if err != nil {
			return false, nil
		}
		return !st.IsLearner, nil
	})
	check(t, "the promoted member applied its promotion", err)
	mustPut(t, nc, ctx, "through-new-member", "ok")

	// Removing the new member: its process stops by itself, the others go on.
	err = framework.WaitFor(30*time.Second, 250*time.Millisecond, func() (bool, error) {
		r := ms[0].Etcdctl("member", "remove", strconv.FormatUint(newID, 16))
		if r.Err != nil && strings.Contains(r.Err.Error(), "unhealthy cluster") {
			return false, nil
		}
		return r.Err == nil, r.Err
	})
	check(t, "etcdctl member remove", err)
	err = framework.WaitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) { return !nm.Running(), nil })
	check(t, "removed member stops", err)
	if ours() && !strings.Contains(nm.Logs(), "permanently removed") {
		t.Fatalf("removed member's log:\n%s", nm.Logs())
	}
	if err := nm.ExitError(); err != nil {
		t.Fatalf("removed member exited with %v", err)
	}
	ml, err = c.MemberList(ctx)
	check(t, "member list after remove", err)
	if len(ml.Members) != 3 {
		t.Fatalf("%d members after removal", len(ml.Members))
	}
	mustPut(t, ms[1].Client(), ctx, "after-remove", "ok")
	_, err = c.MemberRemove(ctx, newID)
	requireErr(t, err, rpctypes.ErrMemberNotFound)
}

func memberID(t *testing.T, ctx context.Context, c *clientv3.Client, peerURL string) uint64 {
	t.Helper()
	ml, err := c.MemberList(ctx)
	check(t, "member list", err)
	for _, m := range ml.Members {
		for _, u := range m.PeerURLs {
			if u == peerURL {
				return m.ID
			}
		}
	}
	t.Fatalf("no member with peer URL %s in %v", peerURL, ml.Members)
	return 0
}

// ours reports whether the server under test is metastore (not etcd-ref),
// for assertions on its log lines.
func ours() bool { return os.Getenv(framework.EnvServerBin) == "" }

// checkLearnerRefuses checks, through a client of the learner only, that
// it refuses what a learner cannot serve with etcd's FailedPrecondition
// "rpc not supported for learner" (clients then try another endpoint) and
// serves Status and serializable reads.
func checkLearnerRefuses(t *testing.T, ctx context.Context, nc *clientv3.Client) {
	t.Helper()
	want := rpctypes.Error(rpctypes.ErrGRPCNotSupportedForLearner)
	refused := func(what string, err error) {
		t.Helper()
		requireErr(t, err, want)
		if ee, ok := err.(rpctypes.EtcdError); !ok || ee.Code() != codes.FailedPrecondition {
			t.Fatalf("%s on a learner: %v, want code FailedPrecondition", what, err)
		}
	}
	_, err := nc.Get(ctx, "last")
	refused("linearizable get", err)
	_, err = nc.Put(ctx, "on-learner", "x")
	refused("put", err)
	_, err = nc.Txn(ctx).Then(clientv3.OpGet("last", clientv3.WithSerializable())).Commit()
	refused("txn", err)
	_, err = nc.Grant(ctx, 60)
	refused("lease grant", err)
	_, err = nc.MemberList(ctx)
	refused("member list", err)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	wr, ok := <-nc.Watch(wctx, "last")
	if !ok || wr.Err() == nil || !strings.Contains(wr.Err().Error(), "rpc not supported for learner") {
		t.Fatalf("watch on a learner: open=%v err=%v, want the learner refusal", ok, wr.Err())
	}
	_, err = nc.Get(ctx, "last", clientv3.WithSerializable())
	check(t, "serializable get on a learner", err)
	st, err := nc.Status(ctx, nc.Endpoints()[0])
	check(t, "status of a learner", err)
	if !st.IsLearner {
		t.Fatal("status of a learner: IsLearner = false")
	}
}
