package robustness

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/tests/framework"
)

// TestNoAnswerBeforeCaughtUp is the regression test for what etcd's own
// robustness suite found (tests/etcdrobustness/run.sh, exploratory
// EtcdTrafficDeleteLeases/ClusterOfSize3/MemberReplace): a member that
// starts answers client requests before it has caught up with the cluster,
// so a client sees the revision go back. The suite's compaction loop asks
// Status of a member that MemberReplace had just started with an empty data
// dir, got revision 1 after it had compacted at ~780, and panicked
// (RandRange with a negative range). etcd serves no client request before
// the member is ready (embed's serve waits for ReadyNotify, i.e. the member
// published itself through raft, after every earlier entry was applied).
//
// Here a follower is stopped, the cluster moves on, and the follower is
// started with its incoming peer traffic blackholed, so that it cannot catch
// up: no answer it gives may show a revision older than the cluster's.
// Against etcd (METASTORE_E2E_SERVER_BIN=.bin/etcd-ref) every Status call
// times out until the link is healed.
func TestNoAnswerBeforeCaughtUp(t *testing.T) {
	ms := framework.StartCluster(t, 3, framework.Options{PeerProxy: true, ExtraArgs: []string{"--heartbeat-interval", "50", "--election-timeout", "500"}})
	lagging := ms[2]
	lagging.Stop()
	cl, err := clientv3.New(clientv3.Config{Endpoints: []string{ms[0].ClientURL, ms[1].ClientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var rev int64
	for i := range 50 {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		resp, err := cl.Put(ctx, fmt.Sprintf("k%d", i), "v")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	lagging.Proxy.SetIncoming(framework.LinkFault{Blackhole: true})
	// Started without waiting for it to serve: it cannot, until healed.
	if err := lagging.SpawnWithFailpoints(""); err != nil {
		t.Fatal(err)
	}
	lc, err := clientv3.New(clientv3.Config{Endpoints: []string{lagging.ClientURL}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	status := func() (*clientv3.StatusResponse, error) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		return lc.Status(ctx, lagging.ClientURL)
	}
	// Three seconds of asking while it cannot catch up.
	deadline := time.Now().Add(3 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if st, err := status(); err == nil && st.Header.Revision < rev {
			t.Fatalf("%s answered Status with revision %d before it caught up with the cluster at revision %d (etcd answers nothing before it is ready)",
				lagging.Name, st.Header.Revision, rev)
		}
		<-tick.C
	}
	lagging.Proxy.Heal()
	err = framework.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		st, err := status()
		if err != nil {
			return false, nil
		}
		if st.Header.Revision < rev {
			return false, fmt.Errorf("%s answered Status with revision %d, the cluster is at %d", lagging.Name, st.Header.Revision, rev)
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
