package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/metastore/metastore/tests/framework"
)

// badFlagCases are values etcd refuses at start, with the text of etcd's
// error (which metastore prints as its one line).
var badFlagCases = []struct {
	name string
	args []string
	want string
}{
	{"tracing sampling rate negative", []string{"--enable-distributed-tracing", "--distributed-tracing-sampling-rate=-1"},
		"distributed tracing configurition is not valid: (tracing sampling rate must be positive)"},
	{"tracing sampling rate above a million", []string{"--enable-distributed-tracing", "--distributed-tracing-sampling-rate=1000001"},
		"distributed tracing configurition is not valid: (tracing sampling rate must be less than 1000000)"},
	{"log rotation without a file", []string{"--enable-log-rotation"},
		"--log-outputs requires a single file path when --log-rotate-config-json is defined"},
	{"log rotation of two files", []string{"--enable-log-rotation", "--log-outputs=a.log,b.log"},
		"--log-outputs requires a single file path when --log-rotate-config-json is defined"},
	{"log rotation config not json", []string{"--enable-log-rotation", "--log-outputs=a.log", "--log-rotation-config-json={bad"},
		"improperly formatted log rotation config: invalid character 'b' looking for beginning of object key string"},
	{"log rotation config of the wrong type", []string{"--enable-log-rotation", "--log-outputs=a.log", `--log-rotation-config-json={"maxsize":"a"}`},
		"invalid log rotation config: json: cannot unmarshal string into Go struct field logRotationConfig.Logger.maxsize of type int"},
	{"self-signed certificates valid for no time", []string{"--auto-tls", "--self-signed-cert-validity", "0"},
		"selfSignedCertValidity is invalid,it should be greater than 0"},
}

// TestBadOperationsFlags starts the server with each bad value: metastore
// exits 2 with etcd's error as one line on stderr; etcd (etcd-ref) fails
// with the same text in its log.
func TestBadOperationsFlags(t *testing.T) {
	bin := framework.ServerBinary(t)
	for _, tc := range badFlagCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := append([]string{"--data-dir", dir + "/data",
				"--listen-client-urls", "http://127.0.0.1:0", "--advertise-client-urls", "http://127.0.0.1:2379",
				"--listen-peer-urls", "http://127.0.0.1:0"}, tc.args...)
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Dir = dir
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) {
				t.Fatalf("server did not fail: %v; stderr %q", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not hold %q", stderr.String(), tc.want)
			}
			if !ours() {
				return
			}
			if exitErr.ExitCode() != 2 {
				t.Errorf("exit status %d, want 2", exitErr.ExitCode())
			}
			if lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n"); len(lines) != 1 {
				t.Errorf("stderr has %d lines, want one: %q", len(lines), stderr.String())
			}
		})
	}
}
