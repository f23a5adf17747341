package e2e

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/metastore/metastore/tests/framework"
)

// vmLockedKB reads VmLck (locked memory) of a process.
func vmLockedKB(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	check(t, "open status", err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmLck:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			check(t, "parse VmLck", err)
			return n
		}
	}
	t.Fatal("no VmLck in /proc status")
	return 0
}

// TestMemoryMlock: --memory-mlock keeps the server's memory locked in RAM;
// without it nothing is locked.
func TestMemoryMlock(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil || (lim.Cur != unix.RLIM_INFINITY && os.Geteuid() != 0) {
		t.Skipf("cannot lock memory here (RLIMIT_MEMLOCK %d, euid %d)", lim.Cur, os.Geteuid())
	}
	m, c, ctx := setup(t, "--memory-mlock")
	mustPut(t, c, ctx, "k", "v")
	if kb := vmLockedKB(t, m.Pid()); kb == 0 {
		t.Fatal("--memory-mlock: no memory locked")
	}
	plain := framework.Start(t, framework.Options{Name: "plain"})
	if kb := vmLockedKB(t, plain.Pid()); kb != 0 {
		t.Fatalf("without --memory-mlock: %d kB locked", kb)
	}
}
