package e2e

import (
	"fmt"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestBootstrapDefragThreshold checks that --bootstrap-defrag-threshold-megabytes
// is acted on at start: with a threshold above what a defragmentation would
// free, the member logs etcd's "Skipping defragmentation" with the
// threshold in bytes, and serves every key; without the flag it does not
// look. (Whether a defragmentation then runs depends on how much Pebble
// has already reclaimed by itself, so that branch is unit-tested in
// internal/member/maintenance.) It passes against etcd-ref too.
func TestBootstrapDefragThreshold(t *testing.T) {
	m, c, ctx := setup(t)
	for i := range 40 {
		mustPut(t, c, ctx, fmt.Sprintf("keep/%02d", i), fmt.Sprint("v", i))
	}
	const msg = `"msg":"Skipping defragmentation"`
	if strings.Contains(m.Logs(), msg) {
		t.Fatal("without --bootstrap-defrag-threshold-megabytes the member logged Skipping defragmentation")
	}
	m.Stop()
	m.StartAgainWith("--bootstrap-defrag-threshold-megabytes", "100000")
	e := logEntry(t, m, "Skipping defragmentation", func(map[string]any) bool { return true })
	if got := e["bootstrap-defrag-threshold-bytes"]; got != float64(100000<<20) {
		t.Errorf("Skipping defragmentation: threshold %v bytes, want %d", got, 100000<<20)
	}
	if strings.Contains(m.Logs(), `"msg":"defragmenting"`) {
		t.Error("defragmented although the threshold is above what it could free")
	}
	r, err := m.Client().Get(ctx, "keep/", clientv3.WithPrefix())
	check(t, "get", err)
	if r.Count != 40 {
		t.Fatalf("after the restart: %d keys, want 40", r.Count)
	}
}
