package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Pinned mode (--pinned) puts every server member on one CPU and the load
// generator on another, so that throughput reflects the server's CPU per
// request rather than the contest of both for the same cores. The CPUs are
// the first two this harness may run on (its own affinity mask).

// pinCPUs returns the server's and the load generator's CPU.
func pinCPUs() (server, client int, err error) {
	cpus, err := allowedCPUs()
	if err != nil {
		return 0, 0, err
	}
	if len(cpus) < 2 {
		return 0, 0, fmt.Errorf("--pinned needs 2 CPUs, this process may run on %d", len(cpus))
	}
	return cpus[0], cpus[1], nil
}

// allowedCPUs are the CPUs this process may run on, in ascending order.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// pinner starts processes on one CPU: through taskset (util-linux), whose
// affinity is inherited by every thread the program starts, or, without
// taskset, by setting the affinity of each of the process's threads right
// after it started (pinThreads).
type pinner struct {
	taskset string // path; "" when taskset is missing
}

func newPinner() pinner {
	p, err := exec.LookPath("taskset")
	if err != nil {
		return pinner{}
	}
	return pinner{taskset: p}
}

// wrap returns the command line that runs bin args on cpu: through taskset
// when there is one, unchanged otherwise (the caller then calls pinThreads
// once the process started).
func (p pinner) wrap(cpu int, bin string, args []string) (string, []string) {
	if p.taskset == "" {
		return bin, args
	}
	return p.taskset, append([]string{"-c", strconv.Itoa(cpu), bin}, args...)
}

// after pins the started process pid when wrap could not.
func (p pinner) after(cpu, pid int) error {
	if p.taskset != "" {
		return nil
	}
	return pinThreads(pid, cpu)
}

// describe says how processes are pinned, for the report.
func (p pinner) describe() string {
	if p.taskset != "" {
		return "taskset -c <cpu>"
	}
	return "sched_setaffinity on every thread right after the start (no taskset on this machine)"
}

// pinThreads sets the affinity of every thread of pid to cpu. Threads that
// a not yet pinned thread starts in the meantime inherit its old mask, so
// the listing repeats until a pass finds no thread left to pin (bounded:
// the Go runtime starts a handful of threads at start-up).
func pinThreads(pid, cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	pinned := map[int]bool{}
	for pass := 0; pass < 50; pass++ {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return fmt.Errorf("pin pid %d: %w", pid, err)
		}
		fresh := 0
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || pinned[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pin thread %d of pid %d: %w", tid, pid, err)
			}
			pinned[tid] = true
			fresh++
		}
		if fresh == 0 {
			return nil
		}
	}
	return fmt.Errorf("pin pid %d: threads still appearing after 50 passes", pid)
}

// checkPinned fails unless every thread of pid may run on cpu only.
func checkPinned(pid, cpu int) error {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return fmt.Errorf("check pinning of pid %d: %w", pid, err)
	}
	want := strconv.Itoa(cpu)
	for _, e := range ents {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, e.Name()))
		if err != nil {
			continue // the thread exited
		}
		if got := cpusAllowed(string(b)); got != want {
			return fmt.Errorf("thread %s of pid %d may run on CPUs %q, want %s", e.Name(), pid, got, want)
		}
	}
	return nil
}

// cpusAllowed is the value of the Cpus_allowed_list line of a
// /proc/<pid>/status text, "" if there is none.
func cpusAllowed(status string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
