package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	rtrace "runtime/trace"
	"testing"

	"github.com/metastore/metastore/bench/putpath"
)

// A trace without requests says so, and a missing file is an error; the
// tables themselves are tested in bench/putpath.
func TestRunReportsTracesWithoutRequests(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := rtrace.Start(&buf); err != nil {
		t.Fatal(err)
	}
	rtrace.Stop()
	idle := filepath.Join(dir, "idle.trace")
	if err := os.WriteFile(idle, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(idle, putpath.DefaultEnd, &out); !errors.Is(err, putpath.ErrNoPath) {
		t.Errorf("idle trace: %v, want ErrNoPath", err)
	}
	if err := run(filepath.Join(dir, "missing"), putpath.DefaultEnd, &out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing trace: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("printed %q for no paths", out.String())
	}
}
