package framework

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Env vars understood by the framework.
const (
	EnvServerBin    = "METASTORE_E2E_SERVER_BIN"
	EnvRequireTools = "METASTORE_REQUIRE_TOOLS"
	// EnvToolsBin overrides <repo>/.bin, like it does for scripts/install-tools.sh.
	EnvToolsBin = "METASTORE_TOOLS_BIN"
)

// binary caches the one build of ./cmd/metastore per test process: building
// takes seconds and every test needs the same binary.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Main runs the tests and removes the binary built for them. Use it from
// TestMain: os.Exit(framework.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if binary.dir != "" {
		_ = os.RemoveAll(binary.dir)
	}
	tagged.mu.Lock()
	for _, b := range tagged.bins {
		_ = os.RemoveAll(filepath.Dir(b))
	}
	tagged.mu.Unlock()
	return code
}

// RepoRoot returns the root of the metastore repository (the directory
// holding the main go.mod).
func RepoRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return root, nil
		}
	}
	// Source paths are not real when built with -trimpath: ask the go tool.
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("cannot find the repository root: not inside the main module")
	}
	return filepath.Dir(gomod), nil
}

// ServerBinary returns the server binary under test, building ./cmd/metastore
// on first use unless METASTORE_E2E_SERVER_BIN names another binary.
func ServerBinary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() { binary.path, binary.err = resolveServerBinary() })
	if binary.err != nil {
		t.Fatalf("server binary: %v", binary.err)
	}
	return binary.path
}

func resolveServerBinary() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	if p := os.Getenv(EnvServerBin); p != "" {
		if !filepath.IsAbs(p) {
			if _, err := os.Stat(p); err != nil {
				p = filepath.Join(root, p)
			}
		}
		p, err = filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("%s: %w", EnvServerBin, err)
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvServerBin, os.Getenv(EnvServerBin), err)
		}
		return p, nil
	}
	out, err := buildServer(root, "")
	if err == nil {
		binary.dir = filepath.Dir(out)
	}
	return out, err
}

// buildServer builds ./cmd/metastore with the build tags (comma-separated,
// may be empty) into a new temporary directory.
func buildServer(root, tags string) (string, error) {
	dir, err := os.MkdirTemp("", "metastore-e2e-bin-")
	if err != nil {
		return "", fmt.Errorf("temp dir for binary: %w", err)
	}
	out := filepath.Join(dir, "metastore")
	cmd := exec.Command("go", "build", "-buildvcs=false", "-tags", tags, "-o", out, "./cmd/metastore")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("go build -tags %q ./cmd/metastore: %w\n%s", tags, err, b)
	}
	return out, nil
}

// tagged caches the builds of ServerBinaryTags, by tags.
var tagged struct {
	mu   sync.Mutex // held during a build, so each tag set is built once
	bins map[string]string
}

// ServerBinaryTags returns ./cmd/metastore built with the build tags
// (comma-separated; "failpoints" compiles in internal/failpoint's gofail
// failpoints), built once per test process. It always builds this
// repository's server: METASTORE_E2E_SERVER_BIN does not apply.
func ServerBinaryTags(t testing.TB, tags string) string {
	t.Helper()
	tagged.mu.Lock()
	defer tagged.mu.Unlock()
	if b, ok := tagged.bins[tags]; ok {
		return b
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("server binary: %v", err)
	}
	b, err := buildServer(root, tags)
	if err != nil {
		t.Fatalf("server binary: %v", err)
	}
	if tagged.bins == nil {
		tagged.bins = make(map[string]string)
	}
	tagged.bins[tags] = b
	return b
}

// Tool returns the path of a tool installed by scripts/install-tools.sh
// (etcdctl, etcdutl, etcd-ref, benchmark). If it is missing the test is
// skipped, or failed when METASTORE_REQUIRE_TOOLS is set.
func Tool(t testing.TB, name string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, ".bin")
	if d := os.Getenv(EnvToolsBin); d != "" {
		dir = d
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("%s not found at %s: run scripts/install-tools.sh first", name, p)
		if os.Getenv(EnvRequireTools) != "" {
			t.Fatal(msg + " (" + EnvRequireTools + " is set)")
		}
		t.Skip(msg)
	}
	return p
}
