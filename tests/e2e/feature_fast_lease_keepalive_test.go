package e2e

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metastore/metastore/tests/framework"
)

// TestFastLeaseKeepAliveGate: with etcd's default --feature-gates
// FastLeaseKeepAlive=true the leader renews a lease it knows at once, even
// while an entry it committed is still being applied; with
// FastLeaseKeepAlive=false it first waits until it has applied what it had
// committed (etcd's waitAppliedIndex). The apply of one put is held for 5 s
// by the beforeApplyOneEntryNormal failpoint (metastore built with -tags
// failpoints; etcd-ref has no failpoints, so metastore only).
func TestFastLeaseKeepAliveGate(t *testing.T) {
	if os.Getenv(framework.EnvServerBin) != "" {
		t.Skipf("failpoints need metastore built with -tags failpoints, not %s", os.Getenv(framework.EnvServerBin))
	}
	for _, tc := range []struct {
		name      string
		args      []string
		waitApply bool
	}{
		{"default", nil, false},
		{"off", []string{"--feature-gates", "FastLeaseKeepAlive=false"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := framework.Start(t, framework.WithFailpoints(t, framework.Options{ExtraArgs: tc.args}))
			cli := m.Client()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			lease, err := cli.Grant(ctx, 60)
			check(t, "grant", err)
			check(t, "hold the next apply 5 s", m.SetFailpoint("beforeApplyOneEntryNormal", "1*sleep(5000)"))
			putErr := make(chan error, 1)
			go func() {
				_, err := cli.Put(ctx, "held", "apply")
				putErr <- err
			}()
			var committed float64
			check(t, "the put is committed and its apply held", framework.WaitFor(20*time.Second, 20*time.Millisecond, func() (bool, error) {
				c, a, err := proposalCounts(m)
				committed = c
				return err == nil && c > a, err
			}))
			_, err = cli.KeepAliveOnce(ctx, lease.ID)
			check(t, "keep-alive", err)
			_, applied, err := proposalCounts(m)
			check(t, "read the applied count", err)
			if caughtUp := applied >= committed; caughtUp != tc.waitApply {
				t.Errorf("when the keep-alive was answered, applied %v of the %v committed entries; want the apply caught up: %v",
					applied, committed, tc.waitApply)
			}
			check(t, "the held put", <-putErr)
		})
	}
}

// proposalCounts reads etcd_server_proposals_committed_total and
// etcd_server_proposals_applied_total from the member's /metrics.
func proposalCounts(m *framework.Member) (committed, applied float64, err error) {
	_, body, err := m.HTTPGet("/metrics")
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, perr := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch name {
		case "etcd_server_proposals_committed_total":
			committed, err = f, perr
		case "etcd_server_proposals_applied_total":
			applied, err = f, perr
		}
		if err != nil {
			return 0, 0, err
		}
	}
	return committed, applied, sc.Err()
}
