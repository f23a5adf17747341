package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/metastore/metastore/tests/framework"
)

// waitPortsFree waits (bounded: 60 s) until no one listens on the members'
// ports, which the previous server may hold for a moment after exiting.
func (h *harness) waitPortsFree() error {
	for _, port := range append(append([]int(nil), h.clientPorts...), h.peerPorts...) {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		err := framework.WaitFor(60*time.Second, 100*time.Millisecond, func() (bool, error) {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return false, nil
			}
			_ = l.Close()
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("port %d still in use after 60s", port)
		}
	}
	return nil
}

// startServer starts every member of kind (data in dir/<name>), and returns
// once each logged readiness and the cluster answered a put.
func (h *harness) startServer(kind, dir, logPath string) error {
	bin := h.msBin
	if kind == "etcd" {
		bin = h.etcdBin
	}
	if err := h.waitPortsFree(); err != nil {
		return err
	}
	h.servers = nil
	for i, name := range h.names {
		curl := fmt.Sprintf("http://127.0.0.1:%d", h.clientPorts[i])
		purl := fmt.Sprintf("http://127.0.0.1:%d", h.peerPorts[i])
		args := append([]string{"--name", name, "--data-dir", filepath.Join(dir, name),
			"--listen-client-urls", curl, "--advertise-client-urls", curl,
			"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
			"--initial-cluster", h.initialCluster}, h.extraFlags...)
		switch {
		case h.cfg.profile:
			// etcd keeps grpc_server_handling_seconds for --metrics extensive.
			args = append(args, "--enable-pprof", "--metrics=extensive")
		case h.cfg.path:
			args = append(args, "--enable-pprof")
		}
		pbin := bin
		if h.pinned {
			pbin, args = h.pin.wrap(h.srvCPU, bin, args)
		}
		p, err := framework.StartProcess(framework.ProcessOptions{Bin: pbin, Args: args, LogPath: memberLog(logPath, i)})
		if err != nil {
			return fmt.Errorf("%s %s: %w", kind, name, err)
		}
		h.servers = append(h.servers, p)
		if h.pinned {
			if err := h.pin.after(h.srvCPU, p.Pid()); err != nil {
				return fmt.Errorf("%s %s: %w", kind, name, err)
			}
		}
	}
	for i, p := range h.servers {
		if err := p.WaitReady(60 * time.Second); err != nil {
			return fmt.Errorf("%s %s not ready: %w", kind, h.names[i], err)
		}
		if h.pinned {
			// After WaitReady taskset has long exec'd the server.
			if err := checkPinned(p.Pid(), h.srvCPU); err != nil {
				return fmt.Errorf("%s %s: %w", kind, h.names[i], err)
			}
		}
	}
	err := framework.WaitFor(10*time.Second, 200*time.Millisecond, func() (bool, error) {
		return h.etcdctlRun(5*time.Second, "--command-timeout=2s", "put", "foo", "bar") == nil, nil
	})
	if err != nil {
		return fmt.Errorf("%s does not accept puts (log: %s)", kind, logPath)
	}
	return nil
}

// etcdctlRun runs etcdctl against the members, bounded by timeout.
func (h *harness) etcdctlRun(timeout time.Duration, args ...string) error {
	ctx, cancel := context.WithTimeout(h.ctx, timeout)
	defer cancel()
	return exec.CommandContext(ctx, h.etcdctl, append([]string{"--endpoints", h.endpoint}, args...)...).Run()
}

// stopServer sends SIGTERM to every member and notes in the failures a
// member that did not exit with status 0 (a graceful stop is part of what
// is tested). etcd re-raises SIGTERM after its own clean-up, so 143 is its
// normal status.
func (h *harness) stopServer(round int, kind string) {
	ps := h.servers
	h.servers = nil
	for _, p := range ps {
		p.Signal(syscall.SIGTERM)
	}
	for _, p := range ps {
		status, killed := p.Wait(60 * time.Second)
		if killed {
			logf("pid %d did not stop within 60s; sent SIGKILL", p.Pid())
		}
		if status != 0 && !(kind == "etcd" && status == 143) {
			h.failf("### round %d, %s: exit status %d after SIGTERM\n", round, kind, status)
		}
	}
}

func (h *harness) serversAlive() bool {
	for _, p := range h.servers {
		if !p.Running() {
			return false
		}
	}
	return true
}

// memKB is field (VmHWM: peak RSS, VmRSS) of the running server in kB; with
// several members, the largest.
func (h *harness) memKB(field string) int64 {
	var most int64
	for _, p := range h.servers {
		most = max(most, procKB(p.Pid(), field))
	}
	return most
}

// procKB is field of /proc/<pid>/status in kB (0 if unreadable).
func procKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == field+":" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

// serverCPUTicks is the user+system CPU of all members in clock ticks.
func (h *harness) serverCPUTicks() (int64, bool) {
	var sum int64
	for _, p := range h.servers {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
		if err != nil {
			return 0, false
		}
		// Fields after the command name, which may hold spaces: state is
		// field 3, utime and stime fields 14 and 15.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			return 0, false
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		sum += u + st
	}
	return sum, true
}

// clockTicks is the kernel's USER_HZ (getconf CLK_TCK), 100 if unknown.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || v <= 0 {
		return 100
	}
	return v
}

// recordMem records peak and current RSS in MiB.
func (h *harness) recordMem(round int, server, label string) {
	h.record(round, server, label, "peak_rss_mib", fmt.Sprintf("%.1f", float64(h.memKB("VmHWM"))/1024))
	h.record(round, server, label, "rss_mib", fmt.Sprintf("%.1f", float64(h.memKB("VmRSS"))/1024))
	if h.cfg.mode == "suite" {
		h.recordMemSplit(round, server, label)
	}
}

// recordDisk records the apparent size of dir in MiB (du -sb).
func (h *harness) recordDisk(round int, server, label, dir string) {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil {
			n += info.Size()
		}
		return nil
	})
	h.record(round, server, label, "disk_mib", fmt.Sprintf("%.1f", float64(n)/1048576))
}

// runBench runs etcd's benchmark tool once and records rps, avg_ms, p99_ms,
// errors and the server's and load generator's CPU per request; a failed
// run records NA and its error text goes to the failures. It returns false
// if the server died.
func (h *harness) runBench(round int, server, name, section string, timeout time.Duration, args ...string) bool {
	out := filepath.Join(h.out, fmt.Sprintf("r%d-%s-%s.txt", round, server, name))
	if !h.cmdNames[name] {
		h.cmdNames[name] = true
		pin := ""
		if h.pinned {
			pin = fmt.Sprintf("taskset -c %d ", h.cliCPU)
		}
		line := fmt.Sprintf("%s: %sbenchmark --endpoints=%s --precise", name, pin, h.endpoint)
		for _, a := range args {
			line += " " + shellQuote(a) // the scan bounds are raw bytes, not text
		}
		h.commands = append(h.commands, line)
	}
	load := loadAvg()
	h.loads = append(h.loads, fmt.Sprintf("%d\t%s\t%s\t%s", round, server, name, load))
	logf("round %d %s %s (load %s)", round, server, name, load)

	// The scrape comes before the CPU reading: rendering /metrics is the
	// server's work, not the benchmark's.
	fs0, fsErr0 := fsyncTotals(h.ctx, h.clientPorts)
	srv0, srvOK0 := h.serverCPUTicks()
	ctx, cancel := context.WithTimeout(h.ctx, timeout)
	defer cancel()
	bin, bargs := h.benchmk, append([]string{"--endpoints=" + h.endpoint, "--precise"}, args...)
	if h.pinned {
		bin, bargs = h.pin.wrap(h.cliCPU, bin, bargs)
	}
	cmd := exec.CommandContext(ctx, bin, bargs...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	finishProfile := h.startProfile(ctx, round, server, name, out)
	finishTrace := h.startTrace(ctx, round, server, name, out)
	runErr := cmd.Start()
	if runErr == nil {
		if h.pinned {
			if err := h.pin.after(h.cliCPU, cmd.Process.Pid); err != nil {
				h.failf("### round %d, %s, %s: load generator not pinned: %v\n", round, server, name, err)
			}
		}
		runErr = cmd.Wait()
	}
	srv1, srvOK1 := h.serverCPUTicks()
	fs1, fsErr1 := fsyncTotals(h.ctx, h.clientPorts)
	var cliCPU time.Duration
	if cmd.ProcessState != nil {
		cliCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	_ = os.WriteFile(out, []byte(stdout.String()), 0o644)
	_ = os.WriteFile(out+".stderr", []byte(stderr.String()), 0o644)

	r := parseReport(stdout.String(), section)
	if runErr != nil || r.rps == "NA" {
		why := "exit status 0"
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			why = fmt.Sprintf("timed out after %ds", int(timeout.Seconds()))
		case runErr != nil:
			why = runErr.Error()
		}
		h.failf("### round %d, %s, %s: %s\n", round, server, name, why)
		var kept []string
		for _, l := range strings.Split(strings.ReplaceAll(stderr.String(), "\r", "\n"), "\n") {
			if strings.TrimSpace(l) == "" || strings.Contains(l, "INFO: ") || strings.Contains(l, "p/s") {
				continue
			}
			kept = append(kept, l)
		}
		if len(kept) > 5 {
			kept = kept[len(kept)-5:]
		}
		for _, l := range kept {
			h.failf("%s\n", l)
		}
		h.failf("%s", errorDistribution(stdout.String()))
		logf("  FAILED: %s (see %s)", why, out)
		r.rps, r.avgMs, r.p99Ms = "NA", "NA", "NA"
	} else {
		logf("  rps=%s avg=%sms p99=%sms errors=%d", r.rps, r.avgMs, r.p99Ms, r.errors)
	}
	h.record(round, server, name, "rps", r.rps)
	h.record(round, server, name, "avg_ms", r.avgMs)
	h.record(round, server, name, "p99_ms", r.p99Ms)
	h.record(round, server, name, "errors", strconv.Itoa(r.errors))
	// CPU per request of the server and of the load generator: on a shared
	// 2-core machine the two compete, so throughput is bounded by their sum
	// (docs/benchmarks.md, "Where the time goes").
	srvUs, cliUs, perSync := "NA", "NA", "NA"
	if rps := num(r.rps); r.rps != "NA" && r.hasTotal && rps*r.total >= 1 {
		n := float64(int64(rps*r.total + 0.5))
		if srvOK0 && srvOK1 {
			srvUs = fmt.Sprintf("%.1f", float64(srv1-srv0)/h.clkTck*1e6/n)
		}
		cliUs = fmt.Sprintf("%.1f", cliCPU.Seconds()*1e6/n)
		perSync = requestsPerFsync(n, fs0.count, fs1.count, len(h.clientPorts), fsErr0 == nil && fsErr1 == nil)
	}
	if fsErr0 != nil || fsErr1 != nil {
		logf("  fsync count not read: %v", errors.Join(fsErr0, fsErr1))
	}
	h.record(round, server, name, "server_cpu_us", srvUs)
	h.record(round, server, name, "client_cpu_us", cliUs)
	h.record(round, server, name, "req_per_fsync", perSync)
	h.record(round, server, name, "fsync_avg_ms", syncAvgMs(fs0, fs1, fsErr0 == nil && fsErr1 == nil))
	finishProfile(srvUs)
	finishTrace()
	if r.errors > 0 {
		h.failf("### round %d, %s, %s: %d failed requests\n%s", round, server, name, r.errors, errorDistribution(stdout.String()))
	}
	if !h.serversAlive() {
		h.failf("### round %d, %s: server died during %s\n", round, server, name)
		logf("  %s DIED during %s", server, name)
		return false
	}
	return true
}

// errorDistribution is the first 10 lines of the report from its "Error
// distribution" heading on.
func errorDistribution(report string) string {
	i := strings.Index(report, "Error distribution")
	if i < 0 {
		return ""
	}
	lines := strings.SplitAfter(report[i:], "\n")
	if len(lines) > 10 {
		lines = lines[:10]
	}
	s := strings.Join(lines, "")
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "NA"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "NA"
	}
	return strings.Join(f[:3], " ")
}

// shellQuote quotes s as bash's printf %q does for the arguments used here:
// plain words as they are, anything else in $'...' with \xHH escapes.
func shellQuote(s string) string {
	plain := s != ""
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_=./,:+@%", c) >= 0) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	var b strings.Builder
	b.WriteString("$'")
	for _, c := range []byte(s) {
		switch {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "\\%03o", c)
		}
	}
	b.WriteString("'")
	return b.String()
}

// watchProbe checks that a watcher sees a put; if not, it records
// UNAVAILABLE for name with the reason and returns false (not a server
// failure). Without Watch, the benchmark tool would spin on a closed
// channel until its timeout.
func (h *harness) watchProbe(round int, server, name string) bool {
	wpath := filepath.Join(h.out, fmt.Sprintf("r%d-%s-watch-probe.txt", round, server))
	wf, err := os.Create(wpath)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(h.ctx, 40*time.Second)
	defer cancel()
	w := exec.CommandContext(ctx, h.etcdctl, "--endpoints", h.endpoint, "watch", "bench-watch-probe")
	w.Cancel = func() error { return w.Process.Signal(syscall.SIGTERM) }
	w.WaitDelay = 2 * time.Second
	w.Stdout, w.Stderr = wf, wf
	err = w.Start()
	_ = wf.Close() // the child has its own descriptor
	if err != nil {
		return false
	}
	exited := make(chan struct{})
	go func() { _ = w.Wait(); close(exited) }()
	seen := func() bool {
		b, _ := os.ReadFile(wpath)
		for _, l := range strings.Split(string(b), "\n") {
			if len(l) >= 2 && l[0] == 'v' && l[1] >= '0' && l[1] <= '9' {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 300 && time.Now().Before(deadline); i++ {
		_ = h.etcdctlRun(5*time.Second, "--command-timeout=2s", "put", "bench-watch-probe", fmt.Sprintf("v%d", i))
		done := seen()
		if !done {
			select {
			case <-exited:
				done = true
			case <-ctx.Done():
				done = true
			case <-time.After(100 * time.Millisecond):
			}
		}
		if done {
			break
		}
	}
	ok := seen()
	cancel()
	<-exited
	if ok {
		return true
	}
	b, _ := os.ReadFile(wpath)
	msg := strings.ReplaceAll(string(b), "\n", " ")
	if msg == "" {
		msg = "(no event within 30s) "
	}
	h.failf("### round %d, %s, %s: not available yet: etcdctl watch says: %s\n", round, server, name, msg)
	logf("  %s: Watch not available on %s: %s", name, server, msg)
	for _, m := range []string{"rps", "avg_ms", "p99_ms", "errors"} {
		h.record(round, server, name, m, "UNAVAILABLE")
	}
	return false
}
