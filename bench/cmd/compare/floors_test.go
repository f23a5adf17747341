package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestFsyncLatenciesSamplesAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	for _, overwrite := range []bool{true, false} {
		lat, err := fsyncLatencies(dir, 5, overwrite)
		if err != nil {
			t.Fatal(err)
		}
		if len(lat) != 5 {
			t.Fatalf("overwrite %v: %d samples, want 5", overwrite, len(lat))
		}
		for i, d := range lat {
			if d <= 0 {
				t.Errorf("overwrite %v: sample %d: %v", overwrite, i, d)
			}
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("overwrite %v: left %d file(s) behind", overwrite, len(ents))
		}
	}
	if _, err := fsyncLatencies(dir+"/missing", 1, true); err == nil {
		t.Error("no error for a missing dir")
	}
}

func TestGRPCRoundTripsThroughAnEtcdClient(t *testing.T) {
	lat, err := grpcRTTs(context.Background(), 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(lat) != 20 {
		t.Fatalf("%d samples, want 20", len(lat))
	}
	for i, d := range lat {
		if d <= 0 {
			t.Errorf("sample %d: %v", i, d)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := grpcRTTs(ctx, 1); err == nil {
		t.Error("no error with a cancelled context")
	}
}

// firstCPU is a CPU this test may pin to.
func firstCPU(t *testing.T) int {
	cpus, err := allowedCPUs()
	if err != nil || len(cpus) == 0 {
		t.Fatalf("allowed CPUs: %v %v", cpus, err)
	}
	return cpus[0]
}

func TestPinThreadsAndCheckPinned(t *testing.T) {
	cpu := firstCPU(t)
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := checkPinned(cmd.Process.Pid, cpu); err == nil && len(mustCPUs(t)) > 1 {
		t.Error("checkPinned accepted a process not pinned yet")
	}
	if err := pinThreads(cmd.Process.Pid, cpu); err != nil {
		t.Fatal(err)
	}
	if err := checkPinned(cmd.Process.Pid, cpu); err != nil {
		t.Fatal(err)
	}
	if err := checkPinned(cmd.Process.Pid, cpu+1); err == nil {
		t.Errorf("checkPinned accepted CPU %d for a process pinned to %d", cpu+1, cpu)
	}
}

func mustCPUs(t *testing.T) []int {
	cpus, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	return cpus
}

func TestPinnerWrapsWithTaskset(t *testing.T) {
	bin, args := pinner{taskset: "/usr/bin/taskset"}.wrap(1, "/x/benchmark", []string{"--a", "b"})
	if got := bin + " " + strings.Join(args, " "); got != "/usr/bin/taskset -c 1 /x/benchmark --a b" {
		t.Errorf("wrap: %s", got)
	}
	bin, args = pinner{}.wrap(1, "/x/benchmark", []string{"--a"})
	if bin != "/x/benchmark" || len(args) != 1 {
		t.Errorf("wrap without taskset: %s %q", bin, args)
	}
	if got := cpusAllowed("Name:\tx\nCpus_allowed:\t1\nCpus_allowed_list:\t0-1\nMems: 0\n"); got != "0-1" {
		t.Errorf("cpusAllowed: %q", got)
	}
	if got := cpusAllowed("Name:\tx\n"); got != "" {
		t.Errorf("cpusAllowed without the line: %q", got)
	}
}

// The pinner (taskset here, pinThreads where taskset is missing) pins
// every thread of a Go program, which starts several threads at once.
func TestPinnerPinsEveryThreadOfAGoProgram(t *testing.T) {
	p := newPinner()
	cpu := firstCPU(t)
	// The test binary itself is a Go program with several threads; with
	// -test.run matching nothing it would exit at once, so it runs a test
	// that blocks on its stdin.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, args := p.wrap(cpu, exe, []string{"-test.run=^TestHelperBlockOnStdin$"})
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "COMPARE_HELPER=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// The helper prints a line once it runs (taskset, if any, has exec'd it).
	line := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		n, _ := stdout.Read(buf)
		line <- string(buf[:n])
	}()
	select {
	case l := <-line:
		if !strings.Contains(l, "ready") {
			t.Fatalf("helper said %q", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not start within 30s")
	}
	if err := p.after(cpu, cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := checkPinned(cmd.Process.Pid, cpu); err != nil {
		t.Fatal(err)
	}
}

// TestHelperBlockOnStdin is the child of TestPinnerPinsEveryThreadOfAGoProgram.
func TestHelperBlockOnStdin(t *testing.T) {
	if os.Getenv("COMPARE_HELPER") != "1" {
		return
	}
	os.Stdout.WriteString("ready\n")
	buf := make([]byte, 1)
	_, _ = os.Stdin.Read(buf)
}
