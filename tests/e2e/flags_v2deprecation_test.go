package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metastore/metastore/tests/framework"
)

// v2DeprecationWarning is etcd v3.7.3's warning when --v2-deprecation is
// given.
const v2DeprecationWarning = "--v2-deprecation is deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input."

// TestV2DeprecationEnforced starts a member with each phase etcd v3.7.3
// accepts (one of them a list): it serves, logs the deprecation warning,
// and reports the phase in effect, write-only, in its start-up log line
// (etcd's "starting an etcd server", metastore's "starting metastore").
func TestV2DeprecationEnforced(t *testing.T) {
	for _, v := range []string{"gone", "write-only-skip-check,write-only-drop-data"} {
		t.Run(v, func(t *testing.T) {
			m, c, ctx := setup(t, "--v2-deprecation", v)
			mustPut(t, c, ctx, "k", "v")
			var phase string
			warned := false
			for _, line := range strings.Split(m.Logs(), "\n") {
				var e map[string]any
				if json.Unmarshal([]byte(line), &e) != nil {
					continue
				}
				if p, ok := e["v2-deprecation"].(string); ok {
					phase = p
				}
				if e["msg"] == v2DeprecationWarning && e["level"] == "warn" {
					warned = true
				}
			}
			if phase != "write-only" {
				t.Errorf("start-up log reports v2-deprecation %q, want the enforced write-only; log:\n%s", phase, m.Logs())
			}
			if !warned {
				t.Errorf("no deprecation warning %q in the log", v2DeprecationWarning)
			}
		})
	}
}

// TestV2DeprecationBadValue checks that a phase etcd v3.7.3 does not
// accept (not-yet, which older releases took, or anything else, alone or in
// a list) stops the start with exit status 2 and etcd's message, which
// names the flag and the bad item.
func TestV2DeprecationBadValue(t *testing.T) {
	bin := framework.ServerBinary(t)
	for _, tc := range []struct{ value, item string }{
		{"not-yet", "not-yet"},
		{"bogus", "bogus"},
		{"gone,never", "never"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--data-dir", dir+"/data", "--v2-deprecation", tc.value,
				"--listen-client-urls", "http://127.0.0.1:0", "--advertise-client-urls", "http://127.0.0.1:2379",
				"--listen-peer-urls", "http://127.0.0.1:0")
			cmd.Dir = dir
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 {
				t.Fatalf("start with --v2-deprecation=%s: %v, want exit status 2; stderr %q", tc.value, err, stderr.String())
			}
			// etcd: invalid value "X" for flag -v2-deprecation: invalid value "ITEM"
			// (metastore writes the flag with two dashes, as for every flag).
			first := strings.SplitN(stderr.String(), "\n", 2)[0]
			for _, want := range []string{`invalid value "` + tc.value + `" for flag -`, `-v2-deprecation: invalid value "` + tc.item + `"`} {
				if !strings.Contains(first, want) {
					t.Errorf("first stderr line %q does not hold %q", first, want)
				}
			}
		})
	}
}

// TestV2DeprecationConfigFile: etcd reads the config file's v2-deprecation
// key into a plain string, so even a phase its flag refuses ("not-yet")
// is taken, with the deprecation warning, and write-only is enforced.
func TestV2DeprecationConfigFile(t *testing.T) {
	dir := t.TempDir()
	var ports [2]int
	for i := range ports {
		p, err := framework.FreePort()
		check(t, "free port", err)
		ports[i] = p
	}
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	cfg := fmt.Sprintf("name: v2\ndata-dir: %s\nlisten-client-urls: %s\nadvertise-client-urls: %s\n"+
		"listen-peer-urls: %s\ninitial-advertise-peer-urls: %s\ninitial-cluster: v2=%s\nv2-deprecation: not-yet\n",
		filepath.Join(dir, "data"), client, client, peer, peer, peer)
	path := filepath.Join(dir, "etcd.yaml")
	check(t, "write the config file", os.WriteFile(path, []byte(cfg), 0o600))
	out, exited, _ := runUntilOutput(t, []string{"--config-file", path}, framework.ReadyLine, false)
	if exited || !strings.Contains(out, framework.ReadyLine) {
		t.Fatalf("the member did not serve with v2-deprecation: not-yet in its config file:\n%s", out)
	}
	if !strings.Contains(out, v2DeprecationWarning) || !strings.Contains(out, `"v2-deprecation":"write-only"`) {
		t.Errorf("no deprecation warning or enforced write-only in the output:\n%s", out)
	}
}
