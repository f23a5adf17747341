package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/coreos/go-semver/semver"

	"github.com/metastore/metastore/tests/framework"
)

// TestHTTPEndpoints checks the plain-HTTP endpoints served on the client port.
func TestHTTPEndpoints(t *testing.T) {
	m, _, _ := setup(t)

	code, body, err := m.HTTPGet("/health")
	check(t, "GET /health", err)
	if code != 200 {
		t.Fatalf("/health status %d body %q", code, body)
	}
	var health map[string]string
	if err := json.Unmarshal([]byte(body), &health); err != nil || len(health) != 2 || health["health"] != "true" || health["reason"] != "" {
		t.Fatalf("/health body %q (%v), want {\"health\":\"true\",\"reason\":\"\"}", body, err)
	}

	for _, path := range []string{"/livez", "/readyz"} {
		code, body, err := m.HTTPGet(path)
		check(t, "GET "+path, err)
		if code != 200 || body != "ok\n" {
			t.Fatalf("%s: status %d body %q, want 200 \"ok\\n\"", path, code, body)
		}
	}

	// etcdcluster is "not_decided" until the cluster version is published,
	// which may happen just after the server reports ready.
	var ver map[string]string
	err = framework.WaitFor(10*time.Second, 50*time.Millisecond, func() (bool, error) {
		code, body, err = m.HTTPGet("/version")
		if err != nil {
			return false, err
		}
		ver = nil
		if err := json.Unmarshal([]byte(body), &ver); code != 200 || err != nil {
			return false, fmt.Errorf("/version: status %d body %q: %v", code, body, err)
		}
		return ver["etcdcluster"] != "not_decided", nil
	})
	check(t, "GET /version", err)
	for _, field := range []string{"etcdserver", "etcdcluster"} {
		v, err := semver.NewVersion(ver[field])
		if err != nil || v.LessThan(*semver.New("3.5.0")) {
			t.Fatalf("/version %s = %q, want a semver >= 3.5 (%v); body %q", field, ver[field], err, body)
		}
	}
}
