package e2e

import (
	"strings"
	"testing"
)

// TestBboltFreelistTypeLogsOnce checks that --backend-bbolt-freelist-type,
// which tunes bbolt (metastore has none), is accepted and logged once with
// the reason it has no effect, not ignored silently.
func TestBboltFreelistTypeLogsOnce(t *testing.T) {
	if !ours() {
		t.Skip("etcd acts on this flag")
	}
	m, c, ctx := setup(t, "--backend-bbolt-freelist-type", "array")
	mustPut(t, c, ctx, "k", "v")
	logEntry(t, m, "flag has no effect on metastore", func(e map[string]any) bool {
		return e["flag"] == "--backend-bbolt-freelist-type" && strings.Contains(field(e, "reason"), "bbolt")
	})
	if n := strings.Count(m.Logs(), `"flag":"--backend-bbolt-freelist-type"`); n != 1 {
		t.Errorf("--backend-bbolt-freelist-type logged %d times, want once", n)
	}
}
