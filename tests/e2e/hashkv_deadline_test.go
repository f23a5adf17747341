package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/metastore/metastore/tests/framework"
)

// TestHashKVGivesUpAtItsDeadline: a HashKV at the revision of a compaction
// that is still running waits for the compaction's hash (the compactor
// records it when its scan ends, which a paced compaction of a large store
// takes minutes to reach). The server must stop waiting when the client's
// deadline passes, end the call, and keep answering: here the
// compactor rests an hour after its first one-revision batch, so without
// that the handler would stay blocked for the hour and the server would
// never count the call as handled.
func TestHashKVGivesUpAtItsDeadline(t *testing.T) {
	relMetastoreOnly(t)
	m, metricsURL := relStart(t, framework.Options{ExtraArgs: []string{
		"--compaction-batch-limit", "1", "--compaction-sleep-interval", "1h",
	}})
	c := m.Client()
	ctx := relCtx(t, 60*time.Second)
	var rev int64
	for i := range 3 {
		resp, err := c.Put(ctx, "hashkv/k", string(rune('a'+i)))
		check(t, "put", err)
		rev = resp.Header.Revision
	}
	_, err := c.Compact(ctx, rev)
	check(t, "compact", err)
	_, err = c.Put(ctx, "hashkv/after", "x")
	check(t, "put after the compaction", err)

	// The client's deadline reaches the server twice: as the call's
	// grpc-timeout and as the stream's reset when the client gives up;
	// whichever ends the server's context first sets the code it counts.
	handled := func() float64 {
		m := relScrape(t, metricsURL)
		return m.sum("grpc_server_handled_total", `grpc_method="HashKV"`, `grpc_code="DeadlineExceeded"`) +
			m.sum("grpc_server_handled_total", `grpc_method="HashKV"`, `grpc_code="Canceled"`)
	}
	before := handled()
	hctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = c.HashKV(hctx, strings.TrimPrefix(m.ClientURL, "http://"), rev)
	cancel()
	if code := relCode(err); code != codes.DeadlineExceeded {
		t.Fatalf("HashKV at the running compaction's revision: %v (code %v), want DeadlineExceeded", err, code)
	}
	// The server's own count of the call: it rises once the handler has
	// returned, which it does at the deadline, not when the compaction ends.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for handled() < before+1 {
		select {
		case <-ctx.Done():
			m := relScrape(t, metricsURL)
			t.Fatalf("the server did not finish the HashKV call after its deadline: HashKV started %v, handled %v (DeadlineExceeded %v, Canceled %v)",
				m.sum("grpc_server_started_total", `grpc_method="HashKV"`), m.sum("grpc_server_handled_total", `grpc_method="HashKV"`),
				m.sum("grpc_server_handled_total", `grpc_method="HashKV"`, `grpc_code="DeadlineExceeded"`),
				m.sum("grpc_server_handled_total", `grpc_method="HashKV"`, `grpc_code="Canceled"`))
		case <-tick.C:
		}
	}
	// A hash at the current revision does not wait for the compaction.
	resp, err := c.HashKV(ctx, strings.TrimPrefix(m.ClientURL, "http://"), 0)
	check(t, "HashKV at the current revision", err)
	if resp.CompactRevision != rev || resp.HashRevision != rev+1 {
		t.Fatalf("HashKV(0) = compact revision %d, hash revision %d, want %d, %d", resp.CompactRevision, resp.HashRevision, rev, rev+1)
	}
}
