package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func (h *harness) timeoutDefault() time.Duration { return time.Duration(h.cfg.timeout) * time.Second }

func itoa(n int) string { return fmt.Sprint(n) }

// suiteArgs are the benchmark tool's arguments for each benchmark of the
// suite: etcd's performance doc scaled to 2 cores. Keys are 8 bytes;
// sequential put keys with key-space-size = total make every put a new key
// (the doc's key-space-size of 1 would rewrite one key).
func (h *harness) suiteArgs(name string) []string {
	n := h.cfg.n
	one := []string{"--conns=1", "--clients=1"}
	many := []string{"--conns=100", "--clients=1000"}
	val := "--val-size=" + itoa(n["VAL_SIZE"])
	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	put := func(total int) []string {
		return []string{"put", "--key-size=8", val, "--sequential-keys", "--key-space-size=" + itoa(total), "--total=" + itoa(total)}
	}
	rng := func(cons string, total int) []string {
		return []string{"range", "foo", "--consistency=" + cons, "--total=" + itoa(total)}
	}
	switch name {
	case "put-1":
		return cat(h.writeTarget, one, put(n["PUT1_TOTAL"]))
	case "put-1000":
		return cat(h.writeTarget, many, put(n["PUT_TOTAL"]))
	case "range-l-1":
		return cat(one, rng("l", n["RANGE1_TOTAL"]))
	case "range-s-1":
		return cat(one, rng("s", n["RANGE1_TOTAL"]))
	case "range-l-1000":
		return cat(many, rng("l", n["RANGE_TOTAL"]))
	case "range-s-1000":
		return cat(many, rng("s", n["RANGE_TOTAL"]))
	case "txn-put-1000":
		return cat(h.writeTarget, many, []string{"txn-put", "--key-size=8", val,
			"--key-space-size=" + itoa(n["TXN_TOTAL"]), "--total=" + itoa(n["TXN_TOTAL"])})
	case "watch-latency":
		// 10 streams x 10 watchers on one key; a put every 1/rate s.
		return []string{"watch-latency", "--put-total=" + itoa(n["WATCH_PUTS"]), "--put-rate=" + itoa(n["WATCH_RATE"]),
			"--streams=10", "--watchers-per-stream=10", "--key-size=32", "--val-size=32"}
	}
	panic("suiteArgs: unknown benchmark " + name)
}

// suite runs the whole suite; memory after the puts and at the end.
func (h *harness) suite(r int, s string) bool {
	to := h.timeoutDefault()
	for _, b := range []string{"put-1", "put-1000"} {
		if !h.runBench(r, s, b, "all", to, h.suiteArgs(b)...) {
			return false
		}
	}
	h.recordMem(r, s, "after-put-suite")
	for _, b := range []string{"range-l-1", "range-s-1", "range-l-1000", "range-s-1000", "txn-put-1000"} {
		if !h.runBench(r, s, b, "all", to, h.suiteArgs(b)...) {
			return false
		}
	}
	// If Watch is missing the tool spins on a closed channel (burning CPU
	// until the timeout), so a probe with etcdctl comes first.
	if h.watchProbe(r, s, "watch-latency") {
		wto := time.Duration(h.cfg.n["WATCH_PUTS"]/h.cfg.n["WATCH_RATE"]+60) * time.Second
		if !h.runBench(r, s, "watch-latency", "watch", wto, h.suiteArgs("watch-latency")...) {
			return false
		}
	}
	h.recordMem(r, s, "end-of-suite")
	return true
}

// pathBenches are the benchmarks --path runs (runBench traces each): a put
// from one client, whose latency issue 10 compares with the floors.
var pathBenches = []string{"put-1"}

// pinnedBenches are the suite's benchmarks that --pinned runs: the
// throughput ones (1000 clients).
var pinnedBenches = []string{"put-1000", "range-l-1000", "range-s-1000", "txn-put-1000"}

// runSet runs benches of the suite in order; pinned runs are recorded
// under the benchmark's name plus "-pinned".
func (h *harness) runSet(r int, s string, benches []string) bool {
	for _, b := range benches {
		name := b
		if h.pinned {
			name += "-pinned"
		}
		if !h.runBench(r, s, name, "all", h.timeoutDefault(), h.suiteArgs(b)...) {
			return false
		}
	}
	return true
}

// profileBenches are the benchmarks --profile runs (runBench profiles
// each), in this order: the targets of issue 10 on server CPU per request,
// and a put from one client.
var profileBenches = []string{"put-1", "put-1000", "range-l-1000", "range-s-1000", "txn-put-1000"}

// largeSet loads 1M keys of 1 KiB (8-byte sequential keys), then runs point
// ranges, limited scans and overwrites; memory and disk after each phase.
func (h *harness) largeSet(r int, s, data string) bool {
	n := h.cfg.n
	many := []string{"--conns=100", "--clients=1000"}
	val := "--val-size=" + itoa(n["LARGE_VAL_SIZE"])
	// The load alone may take many minutes: its timeout scales with the
	// keys (500 puts/s at least) unless BENCH_TIMEOUT is larger.
	loadTO := time.Duration(n["LARGE_KEYS"]/500+60) * time.Second
	if to := h.timeoutDefault(); to >= loadTO {
		loadTO = to
	}
	if !h.runBench(r, s, "large-load", "all", loadTO, append(many, "put", "--key-size=8", val, "--sequential-keys",
		"--key-space-size="+itoa(n["LARGE_KEYS"]), "--total="+itoa(n["LARGE_KEYS"]))...) {
		return false
	}
	h.recordMem(r, s, "large-after-load")
	h.recordDisk(r, s, "large-after-load", data)
	to := h.timeoutDefault()
	for _, c := range []string{"l", "s"} {
		if !h.runBench(r, s, "large-range-"+c+"-1000", "all", to, append(many, "range", "foo", "--consistency="+c,
			"--total="+itoa(n["LARGE_RANGE_TOTAL"]))...) {
			return false
		}
	}
	// Scan: 100 keys from the upper half of the key space (zig-zag varint
	// keys start with 0x80-0xff once i >= 64), serializable, 100 clients.
	if !h.runBench(r, s, "large-scan-100", "all", to, "--conns=10", "--clients=100", "range", "\x80", "\xff", "--limit=100",
		"--consistency=s", "--total="+itoa(n["LARGE_SCAN_TOTAL"])) {
		return false
	}
	if !h.runBench(r, s, "large-put-1000", "all", to, append(many, "put", "--key-size=8", val,
		"--key-space-size="+itoa(n["LARGE_KEYS"]), "--total="+itoa(n["LARGE_PUT_TOTAL"]))...) {
		return false
	}
	h.recordMem(r, s, "large-end")
	return true
}

// watchersSet is the watch scale test. The same put load (100 clients,
// 8-byte keys cycling over 1,000) runs first with no watcher, then with
// 10,000 watchers (100 streams x 100, ten on each key) through the benchmark
// tool's watch command, which reports the events it received; the put
// throughput under watchers is the puts over the span of those events.
func (h *harness) watchersSet(r int, s string) bool {
	n, to := h.cfg.n, h.timeoutDefault()
	load := []string{"--conns=10", "--clients=100"}
	puts := itoa(n["WATCHERS_PUTS"])
	if !h.runBench(r, s, "put-no-watchers", "all", to, append(load, "put", "--key-size=8", "--sequential-keys",
		"--key-space-size=1000", "--total="+puts)...) {
		return false
	}
	if !h.runBench(r, s, "put-10k-watchers", "events", to, append(load, "watch", "--key-size=8", "--sequential-keys",
		"--key-space-size=1000", "--watched-key-total=1000", "--streams=100", "--watch-per-stream=100",
		"--put-total="+puts)...) {
		return false
	}
	putRPS := "NA"
	b, _ := os.ReadFile(filepath.Join(h.out, fmt.Sprintf("r%d-%s-put-10k-watchers.txt", r, s)))
	if i := strings.Index(string(b), "Watch events received summary:"); i >= 0 {
		for _, l := range strings.Split(string(b)[i:], "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "Total:" {
				if t := num(f[1]); t > 0 {
					putRPS = fmt.Sprintf("%.1f", float64(n["WATCHERS_PUTS"])/t)
				}
				break
			}
		}
	}
	h.record(r, s, "put-10k-watchers", "put_rps", putRPS)
	h.recordMem(r, s, "watchers-end")
	return true
}
