package logutil

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func TestJSONLinesCarryName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.log")
	lg, err := New(LogConfig{Name: "infra1", Logger: "zap", Level: "info", Format: "json", Outputs: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	lg.Info("ready to serve client requests")
	lg.Debug("hidden at info level")
	lg.Warn("second")
	_ = lg.Sync()

	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2: %q", len(lines), lines)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("line is not JSON: %q: %v", lines[0], err)
	}
	if m["name"] != "infra1" || m["msg"] != "ready to serve client requests" || m["level"] != "info" {
		t.Errorf("line = %v", m)
	}
	for _, k := range []string{"ts", "caller"} {
		if _, ok := m[k]; !ok {
			t.Errorf("line lacks %q: %v", k, m)
		}
	}
	if !strings.Contains(lines[1], `"name":"infra1"`) {
		t.Errorf("second line lacks the name: %q", lines[1])
	}
}

func TestConsoleAndDebug(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.log")
	lg, err := New(LogConfig{Name: "m1", Level: "debug", Format: "console", Outputs: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	lg.Debug("visible")
	_ = lg.Sync()
	lines := readLines(t, path)
	if len(lines) != 1 || !strings.Contains(lines[0], "visible") || !strings.Contains(lines[0], "m1") || strings.HasPrefix(lines[0], "{") {
		t.Errorf("console lines = %q", lines)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c    LogConfig
		want string
	}{
		{LogConfig{Logger: "capnslog"}, "capnslog is removed"},
		{LogConfig{Logger: "logrus"}, "--logger"},
		{LogConfig{Level: "verbose"}, "--log-level"},
		{LogConfig{Format: "xml"}, "--log-format"},
		{LogConfig{Outputs: []string{"default", "stdout"}}, "--log-outputs"},
	} {
		if _, err := New(tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) err = %v, want %q", tc.c, err, tc.want)
		}
	}
	for _, lvl := range []string{"", "debug", "info", "warn", "error", "panic", "fatal"} {
		if err := (LogConfig{Level: lvl}).Validate(); err != nil {
			t.Errorf("level %q: %v", lvl, err)
		}
	}
	if _, err := New(LogConfig{Outputs: []string{filepath.Join(t.TempDir(), "no", "such", "dir", "x.log")}}); err == nil {
		t.Error("unwritable log path accepted")
	}
}

func TestOutputPaths(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{nil, []string{"stderr"}},
		{[]string{"default"}, []string{"stderr"}},
		{[]string{"stderr", "stdout", "stderr"}, []string{"stderr", "stdout"}},
		{[]string{"systemd/journal"}, []string{"stderr"}},
		{[]string{"/tmp/a.log", "/dev/null"}, []string{"/dev/null"}},
	} {
		if got := outputPaths(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("outputPaths(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
