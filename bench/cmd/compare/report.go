package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// spec is the comparison table of a mode.
func (h *harness) spec() []specRow {
	n := h.cfg.n
	switch h.cfg.mode {
	case "watchers":
		p := itoa(n["WATCHERS_PUTS"])
		return []specRow{
			{"put " + p + ", 100 clients, no watcher", "put-no-watchers", "rps", "req/s", "-", 0},
			{"put " + p + ", 100 clients, 10,000 watchers on the keys", "put-10k-watchers", "put_rps", "req/s", "ge", 1.0},
			{"watch events delivered to 10,000 watchers", "put-10k-watchers", "rps", "events/s", "ge", 1.0},
			{"watch events: errors", "put-10k-watchers", "errors", "-", "-", 0},
			{"peak RSS with 10,000 watchers", "watchers-end", "peak_rss_mib", "MiB", "le", 1.0},
		}
	case "large":
		return []specRow{
			{fmt.Sprintf("load %d keys x %d B, 1000 clients", n["LARGE_KEYS"], n["LARGE_VAL_SIZE"]), "large-load", "rps", "req/s", "-", 0},
			{"peak RSS after load", "large-after-load", "peak_rss_mib", "MiB", "le", 0.5},
			{"on-disk size after load", "large-after-load", "disk_mib", "MiB", "-", 0},
			{"range linearizable, 1000 clients", "large-range-l-1000", "rps", "req/s", "-", 0},
			{"range serializable, 1000 clients", "large-range-s-1000", "rps", "req/s", "-", 0},
			{"scan 100 keys, 100 clients", "large-scan-100", "rps", "req/s", "-", 0},
			{"put (overwrite), 1000 clients", "large-put-1000", "rps", "req/s", "-", 0},
			{"put (overwrite), 1000 clients", "large-put-1000", "p99_ms", "ms", "-", 0},
			{"peak RSS end", "large-end", "peak_rss_mib", "MiB", "le", 0.5},
			{"RSS end", "large-end", "rss_mib", "MiB", "-", 0},
			{"on-disk size end (after stop)", "large-end", "disk_mib", "MiB", "-", 0},
		}
	case "path":
		return []specRow{
			{"put, 1 client", "put-1", "avg_ms", "ms", "le", 0.9},
			{"put, 1 client", "put-1", "rps", "req/s", "-", 0},
		}
	case "pinned":
		var rows []specRow
		for _, c := range h.cpuRows() {
			for _, v := range []string{"", "-pinned"} {
				l := c.label
				if v != "" {
					l += ", pinned"
				}
				rows = append(rows, specRow{l, c.bench + v, "p99_ms", "ms", "-", 0}, specRow{l, c.bench + v, "avg_ms", "ms", "-", 0})
			}
		}
		return rows
	}
	// The targets are issue 10's (docs/benchmarks.md names it): server
	// CPU per request and tail latency, not throughput on a shared
	// machine.
	return []specRow{
		{"put, 1 client", "put-1", "avg_ms", "ms", "le", 0.9},
		{"put, 1 client", "put-1", "rps", "req/s", "-", 0},
		{"put, 1000 clients", "put-1000", "rps", "req/s", "-", 0},
		{"put, 1000 clients", "put-1000", "p99_ms", "ms", "le", 0.8},
		{"peak RSS after put suite", "after-put-suite", "peak_rss_mib", "MiB", "le", 0.7},
		{"range linearizable, 1 client", "range-l-1", "rps", "req/s", "-", 0},
		{"range serializable, 1 client", "range-s-1", "rps", "req/s", "-", 0},
		{"range linearizable, 1000 clients", "range-l-1000", "rps", "req/s", "-", 0},
		{"range serializable, 1000 clients", "range-s-1000", "rps", "req/s", "-", 0},
		{"txn-put, 1000 clients", "txn-put-1000", "rps", "req/s", "-", 0},
		{"txn-put, 1000 clients", "txn-put-1000", "p99_ms", "ms", "le", 0.8},
		{"watch-latency (watch events)", "watch-latency", "p99_ms", "ms", "-", 0},
		{"watch-latency (watch events)", "watch-latency", "avg_ms", "ms", "-", 0},
		{"peak RSS end of suite", "end-of-suite", "peak_rss_mib", "MiB", "le", 0.8},
		{"on-disk size end of suite", "end-of-suite", "disk_mib", "MiB", "-", 0},
	}
}

// putFloorMs is issue 10's target on put-1's average latency: at most this
// far above the floor (fdatasync + loopback round trip).
const putFloorMs = 0.15

// cpuRows is the CPU-per-request table of a mode (suite and pinned; the
// pinned mode shows the throughput benchmarks unpinned and pinned), with
// issue 10's targets on the server's CPU per request.
func (h *harness) cpuRows() []cpuRow {
	all := []cpuRow{
		{"put, 1 client", "put-1", "-", 0},
		{"put, 1000 clients", "put-1000", "le", 0.6},
		{"range linearizable, 1 client", "range-l-1", "-", 0},
		{"range serializable, 1 client", "range-s-1", "-", 0},
		{"range linearizable, 1000 clients", "range-l-1000", "le", 0.6},
		{"range serializable, 1000 clients", "range-s-1000", "le", 0.5},
		{"txn-put, 1000 clients", "txn-put-1000", "le", 0.6},
		{"watch-latency, per watch event delivered", "watch-latency", "-", 0},
	}
	switch h.cfg.mode {
	case "suite":
		return all
	case "pinned", "profile", "path":
		benches := pinnedBenches
		switch h.cfg.mode {
		case "profile":
			benches = profileBenches
		case "path":
			benches = pathBenches
		}
		var rows []cpuRow
		for _, r := range all {
			for _, b := range benches {
				if r.bench == b {
					rows = append(rows, r)
				}
			}
		}
		return rows
	}
	return nil
}

// pinnedRows are the rows of the pinned table, with issue 10's target on
// the pinned throughput ratio.
func (h *harness) pinnedRows() []cpuRow {
	var rows []cpuRow
	for _, r := range h.cpuRows() {
		rows = append(rows, cpuRow{r.label, r.bench, "ge", 1.6})
	}
	return rows
}

// commandLine is how to repeat this run.
func (h *harness) commandLine() string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "BENCH_") || strings.HasPrefix(kv, "METASTORE_BIN=") {
			env = append(env, kv)
		}
	}
	sort.Strings(env)
	s := strings.Join(append(env, "bench/compare.sh"), " ")
	c := h.cfg
	if c.quick {
		s += " --quick"
	}
	if c.large {
		s += " --large"
	}
	if c.watchers {
		s += " --watchers"
	}
	if c.pinned {
		s += " --pinned"
	}
	if c.profile {
		s += " --profile"
	}
	if c.path {
		s += " --path"
	}
	if c.members > 1 {
		s += fmt.Sprintf(" --members %d", c.members)
	}
	if c.roundsFlag != "" {
		s += " --rounds " + c.roundsFlag
	}
	return s
}

// report prints the markdown report and, with --write-docs, writes it into
// the docs file's section of this mode.
func (h *harness) report() error {
	c := h.cfg
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("### Results (%s) — %s, metastore %s", c.section, h.startDate, h.msVersion)
	p("")
	p("Command: `%s`; %d round(s), order per round: %s; wall time %ds; load average %s at the start, %s at the end (1/5/15 min).",
		h.commandLine(), c.rounds, strings.Join(c.order, " "), int(h.elapsed.Seconds()), h.loadStart, h.loadEnd)
	p("Medians over rounds; ratio = metastore/etcd (for req/s higher is better, for ms, µs and MiB lower is better).")
	p("")
	if c.pinned {
		p("Throughput unpinned and pinned (every member on CPU %d, the load generator on CPU %d; %s). Each round runs each server unpinned, then pinned, on a fresh data dir each time.",
			h.srvCPU, h.cliCPU, h.pin.describe())
		p("")
		p("%s", pinnedTable(h.pinnedRows(), h.results))
		p("")
		p("How busy each pinned CPU was (CPU per request × requests per second, medians over rounds): the pinned throughput shows the server's efficiency only while the server's CPU is the busy one. Where the load generator's CPU is %.0f %% busy or more, the load generator set the pace, and a server that needs less CPU per request cannot show it here.", busyCutoff*100)
		p("")
		p("%s", coreTable(h.pinnedRows(), h.results))
		p("")
	}
	if c.mode != "profile" {
		p("%s", summaryTable(h.spec(), h.results))
		p("")
	}
	if rows := h.cpuRows(); len(rows) > 0 {
		if c.pinned {
			rows = withPinned(rows)
		}
		p("CPU per request: user+system CPU of the server (summed over its %d member(s)) and of the load generator during each benchmark, divided by its requests (for watch-latency: by the watch events delivered).", c.members)
		p("")
		p("%s", cpuTable(rows, h.results))
		p("")
		p("Requests per fsync of the Raft log (`%s`, scraped from every member before and after each benchmark; the requests over each member's syncs): under load the log is synced back to back, so a server that syncs faster persists smaller batches and does its per-batch work more often. The sync averages are the same histogram's: etcd times the fdatasync of its WAL file, metastore the whole synced Pebble commit (write, fdatasync and the hand-offs to Pebble's log writer).", walFsyncMetric)
		p("")
		p("%s", batchingTable(rows, h.results))
		p("")
	}
	if c.mode == "profile" {
		p("%s", ownersReport(h.cpuRows(), h.results, c.n["PROFILE_SECONDS"]))
		p("")
		p("Latency at the load generator beside the time inside the servers' handlers: `grpc_server_handling_seconds` of the benchmark's method (both servers run with `--metrics=extensive`, which etcd needs for it), scraped from every member before and after each benchmark and summed; its quantiles are interpolated within the histogram's buckets (5, 10, 25, 50, 100 ms ...), as Prometheus' `histogram_quantile` does, so they are coarse. The rest of a request's latency is gRPC's transport on both ends and the load generator's own wait for a CPU on this shared machine.")
		p("")
		p("%s", handlingTable(h.cpuRows(), h.results))
		p("")
	}
	if c.mode == "path" {
		p("Where a lone put's latency goes inside each server: a Go execution trace of member 0 (`/debug/pprof/trace`, %d s from %.1f s into the benchmark), each request's critical path followed backwards from the system call that wrote its response to the network wake-up that read it, through the goroutines that woke one another (`bench/putpath`). Each stretch is a system call (the kernel's), a wait for a CPU after a wake-up (the scheduler's), or Go code, by the role of the goroutine that ran it. Tracing slows both servers (the paths are longer than the untraced latency); the split is what carries over. Means per request, medians over rounds.",
			c.n["PATH_SECONDS"], pathDelay.Seconds())
		p("")
		p("%s", pathTable("put-1", h.results))
		p("")
		p("Floors, measured by the harness once per round before the servers (as in the suite): %d writes of 4 KiB, each followed by fdatasync, over an already written file in the data dirs' filesystem; %d sequential gRPC health Checks on 127.0.0.1.",
			c.n["FSYNC_N"], c.n["RTT_N"])
		p("")
		p("%s", floorTable(h.results, putFloorMs))
		p("")
		for _, s := range c.order {
			if d, ok := h.pathDetail[s]; ok {
				p("<details><summary>%s: the critical path by goroutine (bench/putpath)</summary>", s)
				p("")
				p("%s", d)
				p("</details>")
				p("")
			}
		}
	}
	if c.mode == "suite" {
		p("Floors: measured by the harness once per round, before the servers: %d writes of 4 KiB, each followed by fdatasync, overwriting an already written file in the data dirs' filesystem (then the same appended to a new file, for comparison); %d sequential calls of gRPC's health Check to an in-process server on 127.0.0.1, through one etcd client (clientv3, as the load generator creates it). Medians over rounds of each round's median and p99.",
			c.n["FSYNC_N"], c.n["RTT_N"])
		p("")
		if c.members > 1 {
			p("With %d members a put also waits for a follower's fdatasync and a peer round trip; the floor below is a single member's, a lower bound.", c.members)
			p("")
		}
		p("%s", floorTable(h.results, putFloorMs))
		p("")
		p("Where the resident memory is, at the two points whose peak RSS the targets compare (member 0; `bench/cmd/compare/memory.go`): `RssFile` and `RssAnon` from `/proc/<pid>/status`, the anonymous part split with the Go runtime's `go_memstats_*` from `/metrics` (the runtime counts memory it mapped, so \"outside the Go runtime\" is a lower bound). Medians over rounds.")
		p("")
		p("%s", memTable([]struct{ label, point string }{{"after the put suite", "after-put-suite"}, {"end of the suite", "end-of-suite"}}, h.results))
		p("")
	}
	goVersion, _ := h.output("go", "env", "GOVERSION")
	p("Machine: %d CPUs (%s), kernel %s, %s.", runtime.NumCPU(), cpuModel(), kernel(), goVersion)
	p("")
	p("```")
	free, _ := exec.Command("free", "-g").Output()
	b.Write(free)
	p("```")
	p("")
	given := ""
	if v := os.Getenv("METASTORE_BIN"); v != "" {
		given = "given as METASTORE_BIN=" + v + "; "
	}
	etcdVersion, _ := exec.Command(h.etcdBin, "--version").Output()
	extra := ""
	if len(h.extraFlags) > 0 {
		extra = " " + strings.Join(h.extraFlags, " ")
	}
	p("Servers: metastore `%s` (%sbuilt from the working tree with `go build ./cmd/metastore`),", h.msVersion, given)
	p("etcd `%s`; both started as %d member(s), member i with `--name bench<i> --data-dir <fresh dir> --listen-client-urls http://127.0.0.1:<%d+10i> --advertise-client-urls <same> --listen-peer-urls http://127.0.0.1:<%d+10i> --initial-advertise-peer-urls <same> --initial-cluster %s%s`, default fsync.",
		strings.SplitN(string(etcdVersion), "\n", 2)[0], c.members, c.clientPort, c.peerPort, h.initialCluster, extra)
	p("")
	p("<details><summary>Benchmark commands (%s = go.etcd.io/etcd/v3/tools/benchmark v3.6.8)</summary>", filepath.Base(h.benchmk))
	p("")
	p("```")
	for _, l := range h.commands {
		p("%s", l)
	}
	p("```")
	p("</details>")
	p("")
	p("<details><summary>Raw per-round numbers and load averages</summary>")
	p("")
	p("%s", rawTable(h.results))
	p("")
	p("| Round | Server | Benchmark | /proc/loadavg before |")
	p("|---|---|---|---|")
	for _, l := range h.loads {
		p("| %s |", strings.ReplaceAll(l, "\t", " | "))
	}
	p("</details>")
	if h.failures.Len() > 0 {
		p("")
		p("<details><summary>Failures and errors</summary>")
		p("")
		p("```")
		b.WriteString(h.failures.String())
		p("```")
		p("</details>")
	}
	report := b.String()
	// The raw data next to the report, for --keep.
	var tsv strings.Builder
	for _, r := range h.results {
		fmt.Fprintf(&tsv, "%d\t%s\t%s\t%s\t%s\n", r.round, r.server, r.bench, r.metric, r.value)
	}
	for name, data := range map[string]string{
		"report.md":    report,
		"results.tsv":  tsv.String(),
		"loadavg.tsv":  strings.Join(append(h.loads, ""), "\n"),
		"failures.txt": h.failures.String(),
		"commands.txt": strings.Join(append(h.commands, ""), "\n"),
	} {
		if err := os.WriteFile(filepath.Join(h.out, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	fmt.Print(report)
	if c.writeDocs != "" {
		if err := writeSection(c.writeDocs, c.section, report); err != nil {
			return err
		}
		logf("wrote %s", c.writeDocs)
	}
	kept := " (removed; use --keep)"
	if c.keep {
		kept = ""
	}
	logf("done in %ds; raw outputs in %s%s", int(h.elapsed.Seconds()), h.out, kept)
	return nil
}

// writeSection replaces only this mode's section of the docs file,
// delimited by markers (kept from the shell version of this harness, so
// earlier results are replaced in place), so that each mode's results can
// be refreshed independently.
func writeSection(path, section, report string) error {
	begin := "<!-- BEGIN bench/compare.sh " + section + " -->"
	end := "<!-- END bench/compare.sh " + section + " -->"
	old, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		old, err = []byte("# Benchmarks\n"), nil
	}
	if err != nil {
		return err
	}
	var out strings.Builder
	lines := strings.SplitAfter(string(old), "\n")
	found, skip := false, false
	for _, l := range lines {
		t := strings.TrimSuffix(l, "\n")
		switch {
		case t == begin:
			found, skip = true, true
			out.WriteString(l)
			out.WriteString(report)
			continue
		case t == end:
			skip = false
		}
		if !skip {
			out.WriteString(l)
		}
	}
	if !found {
		out.WriteString("\n" + begin + "\n" + report + end + "\n")
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(out.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if i := strings.Index(l, ": "); i >= 0 {
				return l[i+2:]
			}
		}
	}
	return ""
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}
