package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

// logEntry returns the first JSON log line of m with message msg for which
// match is true, polling until the deadline.
func logEntry(t *testing.T, m *framework.Member, msg string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	err := framework.WaitFor(10*time.Second, 20*time.Millisecond, func() (bool, error) {
		for _, line := range strings.Split(m.Logs(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) != nil || e["msg"] != msg {
				continue
			}
			if match(e) {
				found = e
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no log line %q matching; log:\n%s", msg, m.Logs())
	}
	return found
}

func field(e map[string]any, k string) string {
	s, _ := e[k].(string)
	return s
}

// TestWarningDurations checks --warning-unary-request-duration and
// --warning-apply-duration: with both at 1ns every request is slow, and
// the server logs etcd's "request stats" (method and request summary,
// value by size only) and "apply request took too long" (the replicated
// request, and a range read with etcd's "read-only range " prefix).
func TestWarningDurations(t *testing.T) {
	m, c, ctx := setup(t, "--warning-unary-request-duration", "1ns", "--warning-apply-duration", "1ns")
	mustPut(t, c, ctx, "slow-key", "secret-value-7")
	mustGet(t, c, ctx, "slow-range", clientv3.WithPrefix())

	e := logEntry(t, m, "request stats", func(e map[string]any) bool {
		return field(e, "response type") == "/etcdserverpb.KV/Put"
	})
	if got, want := field(e, "request content"), `key:"slow-key" value_size:14`; !strings.Contains(got, want) {
		t.Errorf("request content %q, want it to hold %q", got, want)
	}
	if e["level"] != "warn" || e["request count"] != float64(1) {
		t.Errorf("request stats line %v: want level warn, request count 1", e)
	}
	if strings.Contains(m.Logs(), "secret-value-7") {
		t.Errorf("a log line holds the value")
	}
	e = logEntry(t, m, "apply request took too long", func(e map[string]any) bool {
		return strings.Contains(field(e, "request"), `put:<key:"slow-key" value_size:14`)
	})
	if field(e, "expected-duration") != "1ns" || !strings.HasPrefix(field(e, "response"), "size:") {
		t.Errorf("apply warning %v: want expected-duration 1ns and the response size", e)
	}
	e = logEntry(t, m, "apply request took too long", func(e map[string]any) bool {
		return field(e, "prefix") == "read-only range " && strings.Contains(field(e, "request"), `key:"slow-range"`)
	})
	if !strings.HasPrefix(field(e, "response"), "range_response_count:0 ") {
		t.Errorf("read-only range warning %v", e)
	}
}
