package clitest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	skipMsg   string
)

// binary builds ./cmd/metastore once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = err
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		if _, err := os.Stat(filepath.Join(root, "server")); errors.Is(err, os.ErrNotExist) {
			skipMsg = "the server package does not exist yet"
			return
		}
		dir, err := os.MkdirTemp("", "metastore-clitest-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "metastore")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/metastore")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New("go build ./cmd/metastore: " + err.Error() + "\n" + string(out))
		}
	})
	if skipMsg != "" {
		t.Skip(skipMsg)
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type result struct {
	code           int
	stdout, stderr string
}

// run starts the binary in dir with only the given environment (so ETCD_*
// variables of the machine running the tests cannot leak in).
func run(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, stdout.String(), stderr.String()}
}

func TestBadConfigurationExits2WithOneLine(t *testing.T) {
	scratch := t.TempDir()
	regular := filepath.Join(scratch, "regular-file")
	if err := os.WriteFile(regular, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"bad value", []string{"--heartbeat-interval", "abc"}, nil, "--heartbeat-interval"},
		{"unknown flag", []string{"--no-such-flag"}, nil, "--no-such-flag"},
		{"stray argument", []string{"stray"}, nil, "not a valid flag"},
		{"election vs heartbeat", []string{"--election-timeout", "100"}, nil, "--election-timeout"},
		{"unknown engine", []string{"--storage-engine", "rocksdb"}, nil, "--storage-engine"},
		{"data dir is a file", []string{"--data-dir", regular}, nil, "--data-dir"},
		{"data dir under a file", []string{"--data-dir", filepath.Join(regular, "sub")}, nil, "--data-dir"},
		{"flag and env conflict", []string{"--name", "a"}, []string{"ETCD_NAME=b"}, "ETCD_NAME"},
		{"bad env value", nil, []string{"ETCD_MAX_REQUEST_BYTES=lots"}, "--max-request-bytes"},
		{"local member missing", []string{"--name", "n1", "--initial-cluster", "n2=http://127.0.0.1:2380"}, nil, "n1"},
		{"missing config file", []string{"--config-file", filepath.Join(scratch, "none.yaml")}, nil, "--config-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := run(t, dir, tt.env, tt.args...)
			if r.code != 2 {
				t.Errorf("exit status %d, want 2 (stderr %q)", r.code, r.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "metastore: ") || !strings.Contains(lines[0], tt.want) {
				t.Errorf("stderr = %q, want one line \"metastore: ...%s...\"", r.stderr, tt.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Errorf("the failed start wrote %d entries to its working directory (e.g. %s)", len(entries), entries[0].Name())
			}
		})
	}
}

func TestVersion(t *testing.T) {
	r := run(t, t.TempDir(), []string{"ETCD_VERSION=1"}, "--version")
	if r.code != 0 {
		t.Fatalf("exit status %d (stderr %q)", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 5 || lines[0] != "etcd Version: 3.7.3" ||
		!strings.HasPrefix(lines[1], "Git SHA: ") ||
		!strings.HasPrefix(lines[2], "Go Version: go") ||
		!strings.HasPrefix(lines[3], "Go OS/Arch: ") ||
		lines[4] != "metastore Version: 0.1.0" {
		t.Errorf("--version printed %q", r.stdout)
	}
}

func TestHelp(t *testing.T) {
	r := run(t, t.TempDir(), nil, "--help")
	if r.code != 0 {
		t.Fatalf("exit status %d (stderr %q)", r.code, r.stderr)
	}
	for _, want := range []string{"--data-dir '${name}.metastore'", "--listen-client-urls 'http://127.0.0.1:2379'", "--storage-engine 'pebble'"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--help output lacks %q", want)
		}
	}
}
