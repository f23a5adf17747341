package simcluster

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// runScript runs one datadriven script on a fresh cluster and returns the
// cluster (for its trace).
func runScript(t *testing.T, path string) *Cluster {
	var c *Cluster
	t.Cleanup(func() {
		if c != nil {
			c.Close()
		}
	})
	datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
		cmd := toCommand(td)
		if cmd.Name == "start" {
			if c != nil {
				t.Fatalf("%s: start twice", td.Pos)
			}
			var err error
			if c, err = start(cmd); err != nil {
				t.Fatalf("%s: %v", td.Pos, err)
			}
			return "ok"
		}
		if c == nil {
			t.Fatalf("%s: %s before start", td.Pos, cmd.Name)
		}
		out, err := c.Run(cmd)
		if err != nil {
			// A harness error (not a refusal the cluster gives) fails.
			t.Fatalf("%s: %s: %v", td.Pos, cmd.Name, err)
		}
		return out + "\n"
	})
	return c
}

func toCommand(td *datadriven.TestData) Command {
	cmd := Command{Name: td.Cmd, Args: map[string]string{}}
	for _, a := range td.CmdArgs {
		cmd.Args[a.Key] = strings.Join(a.Vals, ",")
	}
	if in := strings.TrimSpace(td.Input); in != "" {
		cmd.Input = strings.Split(in, "\n")
	}
	return cmd
}

func start(cmd Command) (*Cluster, error) {
	n, err := cmd.uint("n", 3)
	if err != nil {
		return nil, err
	}
	var o Options
	if o.SnapshotCount, err = cmd.uint("snapshot-count", 0); err != nil {
		return nil, err
	}
	if o.CatchupEntries, err = cmd.uint("catchup", 0); err != nil {
		return nil, err
	}
	ml, err := cmd.uint("max-learners", 1)
	if err != nil {
		return nil, err
	}
	o.MaxLearners = int(ml)
	o.NoStrictReconfigCheck = cmd.Args["strict"] == "false"
	return New(int(n), o)
}

// TestScripts runs every scenario in testdata/.
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		runScript(t, path)
	})
}

// TestSameScriptSameTrace runs every scenario twice and compares the full
// traces, every message included: nothing but the script decides what
// happens.
func TestSameScriptSameTrace(t *testing.T) {
	files, err := filepath.Glob("testdata/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			a := runScript(t, f).Trace()
			b := runScript(t, f).Trace()
			if len(a) == 0 {
				t.Fatal("empty trace")
			}
			if d := firstDiff(a, b); d != "" {
				t.Fatalf("two runs of %s differ: %s", f, d)
			}
		})
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("line %d: %q vs %q", i, a[i], b[i])
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%d vs %d lines", len(a), len(b))
	}
	return ""
}
