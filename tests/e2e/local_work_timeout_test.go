package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

// TestLocalWorkOutlastsRequestTimeout: a Compact that waits for the
// physical compaction, and a Defragment, wait for work the member does on
// its whole store, which at 8 GiB takes longer than --request-timeout (the
// 8 GiB run of bench/scale lost its physical compaction to it). etcd bounds
// neither on the server, so neither may fail with "request timed out" while
// the work goes on: only the client's deadline bounds them. A failpoint
// makes each take 3 s against a 1 s --request-timeout (metastore built with
// -tags failpoints; etcd-ref has no failpoints, so metastore only).
func TestLocalWorkOutlastsRequestTimeout(t *testing.T) {
	if os.Getenv(framework.EnvServerBin) != "" {
		t.Skipf("failpoints need metastore built with -tags failpoints, not %s", os.Getenv(framework.EnvServerBin))
	}
	m := framework.Start(t, framework.WithFailpoints(t, framework.Options{ExtraArgs: []string{"--request-timeout", "1s"}}))
	cli := m.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var rev int64
	for i := range 20 {
		r, err := cli.Put(ctx, fmt.Sprintf("lw/%d", i%4), "v")
		check(t, "put", err)
		rev = r.Header.Revision
	}

	check(t, "slow the physical compaction down", m.SetFailpoint("compactBeforeSetFinishedCompact", "1*sleep(3000)"))
	start := time.Now()
	_, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical())
	check(t, "physical compaction slower than --request-timeout", err)
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("physical compaction returned after %v; the failpoint should have held it 3 s", took)
	}

	check(t, "slow the defragment down", m.SetFailpoint("defragBeforeCopy", "1*sleep(3000)"))
	start = time.Now()
	_, err = cli.Defragment(ctx, m.ClientURL)
	check(t, "defragment slower than --request-timeout", err)
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("defragment returned after %v; the failpoint should have held it 3 s", took)
	}
}
