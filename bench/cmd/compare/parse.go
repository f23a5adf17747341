package main

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// benchResult is what one run of etcd's benchmark tool reported.
type benchResult struct {
	rps, avgMs, p99Ms string // "NA" when missing
	errors            int
	total             float64 // seconds; 0 when missing
	hasTotal          bool
}

var errLine = regexp.MustCompile(`^\s*\[(\d+)\]\s`)

// parseReport reads the text summary printed by etcd's benchmark tool
// (go.etcd.io/etcd/pkg/v3/report, tools/benchmark v3.6.8):
//
//	Summary:
//	  Total:        X.XXXX secs.
//	  Average:      X.XXXX secs.
//	  Requests/sec: X.XXXX
//	Latency distribution:
//	  99% in X.XXXX secs.
//	Error distribution:
//	  [N]  message
//
// watch-latency prints two reports ("Put summary:" then "Watch events
// summary:"); with section "watch" only the second one is read, because the
// put side is rate-limited and says nothing about watch delivery. The watch
// command prints "Watch creation summary:" then "Watch events received
// summary:"; with section "events" only the second one is read. Section
// "all" reads everything.
func parseReport(text, section string) benchResult {
	r := benchResult{rps: "NA", avgMs: "NA", p99Ms: "NA"}
	on := section != "watch" && section != "events"
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.Contains(line, "Watch events summary:"):
			if section == "watch" {
				on = true
			}
			continue
		case strings.Contains(line, "Watch events received summary:"):
			if section == "events" {
				on = true
			}
			continue
		case strings.Contains(line, "Put summary:"):
			if section == "watch" {
				on = false
			}
			continue
		case strings.Contains(line, "Watch creation summary:"):
			if section == "events" {
				on = false
			}
			continue
		}
		if !on {
			continue
		}
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "Total:":
			r.total, r.hasTotal = num(f[1]), true
		case len(f) >= 2 && f[0] == "Average:":
			r.avgMs = fmt.Sprintf("%.3f", num(f[1])*1000)
		case len(f) >= 2 && f[0] == "Requests/sec:":
			r.rps = fmt.Sprintf("%.1f", num(f[1]))
		case len(f) >= 3 && f[0] == "99%" && f[1] == "in":
			r.p99Ms = fmt.Sprintf("%.3f", num(f[2])*1000)
		default:
			if m := errLine.FindStringSubmatch(line); m != nil {
				n, _ := strconv.Atoi(m[1])
				r.errors += n
			}
		}
	}
	return r
}

// num is the leading number of s (awk's s+0): 0 if there is none.
func num(s string) float64 {
	end := 0
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || s[end] == '.' || s[end] == '-' || s[end] == 'e' || s[end] == '+') {
		end++
	}
	for ; end > 0; end-- {
		if v, err := strconv.ParseFloat(s[:end], 64); err == nil {
			return v
		}
	}
	return 0
}

// specRow is one row of the comparison table: the median of metric of
// bench for each server, and the target on the ratio metastore/etcd.
type specRow struct {
	label, bench, metric, unit string
	dir                        string // "ge" (higher is better), "le" (lower is better) or "-" (context only)
	target                     float64
}

// result is one measured value: a number, "NA" (the run failed) or
// "UNAVAILABLE" (the server lacks the feature).
type result struct {
	round                 int
	server, bench, metric string
	value                 string
}

// key names one measured quantity of one server.
type key struct{ bench, metric, server string }

// measured is every result grouped by key: the numbers, and how many runs
// failed (NA) or found the feature missing (UNAVAILABLE).
type measured struct {
	vals     map[key][]float64
	na, unav map[key]int
}

func collect(results []result) measured {
	m := measured{vals: map[key][]float64{}, na: map[key]int{}, unav: map[key]int{}}
	for _, r := range results {
		k := key{r.bench, r.metric, r.server}
		switch r.value {
		case "NA":
			m.na[k]++
		case "UNAVAILABLE":
			m.unav[k]++
		default:
			m.vals[k] = append(m.vals[k], num(r.value))
		}
	}
	return m
}

// median is the median of k over the rounds.
func (m measured) median(k key) (float64, bool) { return median(m.vals[k]) }

// cell is k's median as a table cell, with the failure markers.
func (m measured) cell(k key) string {
	v, ok := m.median(k)
	return cell(v, ok, m.na[k], m.unav[k])
}

// compared is the ratio metastore/etcd of bench's metric, the target on it
// and whether it is met, as table cells.
func (m measured) compared(bench, metric, dir string, target float64) (ratio, tgt, met string) {
	mv, mok := m.median(key{bench, metric, "metastore"})
	ev, eok := m.median(key{bench, metric, "etcd"})
	ratio, tgt, met = "n/a", "-", "-"
	if mok && eok && ev > 0 {
		ratio = fmt.Sprintf("%.2f", mv/ev)
	}
	switch dir {
	case "ge":
		tgt = "≥ " + fmtTarget(target) + "×"
	case "le":
		tgt = "≤ " + fmtTarget(target) + "×"
	default:
		return ratio, tgt, met
	}
	switch {
	case ratio == "n/a":
		met = "not available yet"
	case dir == "ge" && mv/ev >= target, dir == "le" && mv/ev <= target:
		met = "yes"
	default:
		met = "**no**"
	}
	return ratio, tgt, met
}

// mdTable is a markdown table: the header's cells, then one line per row.
func mdTable(header []string, rows [][]string) string {
	var b strings.Builder
	line := func(cells []string) { b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	line(header)
	b.WriteString(strings.Repeat("|---", len(header)) + "|\n")
	for _, r := range rows {
		line(r)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// both is bench's metric for metastore and etcd as table cells.
func (m measured) both(bench, metric string) []string {
	return []string{m.cell(key{bench, metric, "metastore"}), m.cell(key{bench, metric, "etcd"})}
}

// summaryTable is the markdown comparison table: medians per (bench,
// metric, server) over the rounds; NA values are left out of a median, a
// row with no value for a server shows "n/a" plus the failure marker.
func summaryTable(spec []specRow, results []result) string {
	m := collect(results)
	var rows [][]string
	for _, row := range spec {
		ratio, tgt, met := m.compared(row.bench, row.metric, row.dir, row.target)
		r := append([]string{row.label, fmt.Sprintf("%s (%s)", row.metric, row.unit)}, m.both(row.bench, row.metric)...)
		rows = append(rows, append(r, ratio, tgt, met))
	}
	return mdTable([]string{"Benchmark", "Metric", "metastore (median)", "etcd (median)", "ratio metastore/etcd", "Target", "Met?"}, rows)
}

// cpuRow is one row of the CPU table: bench's server CPU per request, with
// a target on the ratio metastore/etcd ("le" or "-").
type cpuRow struct {
	label, bench, dir string
	target            float64
}

// cpuTable shows, per benchmark, the server's CPU per request (summed over
// the members) and the load generator's beside it, for both servers, with
// the ratios metastore/etcd; the target is on the server's ratio.
func cpuTable(rows []cpuRow, results []result) string {
	m := collect(results)
	var out [][]string
	for _, row := range rows {
		sr, tgt, met := m.compared(row.bench, "server_cpu_us", row.dir, row.target)
		cr, _, _ := m.compared(row.bench, "client_cpu_us", "-", 0)
		r := append(append([]string{row.label}, m.both(row.bench, "server_cpu_us")...), sr, tgt, met)
		out = append(out, append(append(r, m.both(row.bench, "client_cpu_us")...), cr))
	}
	return mdTable([]string{"Benchmark", "server CPU/req metastore (µs)", "server CPU/req etcd (µs)", "ratio", "Target", "Met?",
		"load generator CPU/req with metastore (µs)", "with etcd (µs)", "ratio"}, out)
}

// pinnedTable shows each benchmark's throughput unpinned and pinned (the
// benchmark's name plus "-pinned") for both servers, with the ratios; the
// target is on the pinned ratio.
func pinnedTable(rows []cpuRow, results []result) string {
	m := collect(results)
	var out [][]string
	for _, row := range rows {
		ur, _, _ := m.compared(row.bench, "rps", "-", 0)
		pb := row.bench + "-pinned"
		pr, tgt, met := m.compared(pb, "rps", row.dir, row.target)
		r := append(append([]string{row.label}, m.both(row.bench, "rps")...), ur)
		out = append(out, append(append(r, m.both(pb, "rps")...), pr, tgt, met))
	}
	return mdTable([]string{"Benchmark", "unpinned metastore (req/s)", "unpinned etcd (req/s)", "ratio",
		"pinned metastore (req/s)", "pinned etcd (req/s)", "ratio", "Target (pinned)", "Met?"}, out)
}

// busyCutoff is the share of its CPU above which a pinned process is taken
// to be what bounds the pinned throughput.
const busyCutoff = 0.9

// coreBusy is the median over rounds of the share of one CPU that the
// server (cpuMetric "server_cpu_us") or the load generator
// ("client_cpu_us") used during bench: its CPU per request times the
// requests per second of the same round.
func coreBusy(results []result, bench, server, cpuMetric string) (float64, bool) {
	rps, cpu := map[int]float64{}, map[int]float64{} // by round
	for _, r := range results {
		if r.bench != bench || r.server != server || r.value == "NA" || r.value == "UNAVAILABLE" {
			continue
		}
		switch r.metric {
		case "rps":
			rps[r.round] = num(r.value)
		case cpuMetric:
			cpu[r.round] = num(r.value)
		}
	}
	var shares []float64
	for k, v := range rps {
		if c, ok := cpu[k]; ok {
			shares = append(shares, v*c/1e6)
		}
	}
	return median(shares)
}

// coreTable shows, for each pinned benchmark, how busy each server's CPU
// and its load generator's CPU were. A pinned throughput measures the
// server only while the server's CPU is the busy one: where the load
// generator's CPU is at busyCutoff or above, the load generator set the
// pace, and a faster server cannot show it on this machine.
func coreTable(rows []cpuRow, results []result) string {
	share := func(bench, server, metric string) (string, float64) {
		v, ok := coreBusy(results, bench, server, metric)
		if !ok {
			return "n/a", -1
		}
		return fmt.Sprintf("%.0f %%", v*100), v
	}
	var out [][]string
	for _, row := range rows {
		pb := row.bench + "-pinned"
		r := []string{row.label}
		var bound string
		for _, s := range []string{"metastore", "etcd"} {
			sc, sv := share(pb, s, "server_cpu_us")
			cc, cv := share(pb, s, "client_cpu_us")
			r = append(r, sc, cc)
			if s != "metastore" {
				continue
			}
			switch {
			case sv < 0 || cv < 0:
				bound = "n/a"
			case cv >= busyCutoff && cv >= sv:
				bound = "the load generator"
			case sv >= busyCutoff:
				bound = "the server's CPU"
			default:
				bound = "neither CPU (serial steps)"
			}
		}
		out = append(out, append(r, bound))
	}
	return mdTable([]string{"Benchmark, pinned", "metastore's CPU busy", "its load generator's CPU busy",
		"etcd's CPU busy", "its load generator's CPU busy", "what bounds metastore's pinned throughput"}, out)
}

// floorTable shows the floors measured in the run (medians over rounds of
// each round's median and p99) and each server's put-1 average latency
// against their sum; the target is metastore's distance to that floor.
func floorTable(results []result, withinMs float64) string {
	m := collect(results)
	get := func(metric string) (float64, bool) { return m.median(key{floorBench, metric, "floor"}) }
	fl := func(metric string) string { return m.cell(key{floorBench, metric, "floor"}) }
	var b strings.Builder
	b.WriteString("| Floor (measured in this run) | median (ms) | p99 (ms) |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| fdatasync of a 4 KiB write, data dir's filesystem | %s | %s |\n", fl("fsync_med_ms"), fl("fsync_p99_ms"))
	fmt.Fprintf(&b, "| (not in the floor) fdatasync of a 4 KiB append, growing the file | %s | %s |\n", fl("fsync_append_med_ms"), fl("fsync_append_p99_ms"))
	fmt.Fprintf(&b, "| gRPC round trip on 127.0.0.1 (health Check, no work) | %s | %s |\n", fl("rtt_med_ms"), fl("rtt_p99_ms"))
	fs, fok := get("fsync_med_ms")
	rt, rok := get("rtt_med_ms")
	floor, ok := fs+rt, fok && rok
	sum := "n/a"
	if ok {
		sum = fmt.Sprintf("%.3f", floor)
	}
	fmt.Fprintf(&b, "| floor of a put from one client (sum of the medians) | %s | - |\n\n", sum)
	b.WriteString("| put, 1 client | avg latency (ms) | above the floor (ms) | Raft log sync, avg (ms) | beyond its sync and the round trip (ms) | Target | Met? |\n|---|---|---|---|---|---|---|\n")
	for _, s := range []string{"metastore", "etcd"} {
		avg, aok := m.median(key{"put-1", "avg_ms", s})
		sync, sok := m.median(key{"put-1", "fsync_avg_ms", s})
		above, beyond, tgt, met := "n/a", "n/a", "-", "-"
		if aok && ok {
			above = fmt.Sprintf("%.3f", avg-floor)
		}
		if aok && sok && rok {
			beyond = fmt.Sprintf("%.3f", avg-sync-rt)
		}
		if s == "metastore" {
			tgt = "≤ " + strconv.FormatFloat(withinMs, 'f', -1, 64) + " ms"
			switch {
			case above == "n/a":
				met = "not available yet"
			case avg-floor <= withinMs:
				met = "yes"
			default:
				met = "**no**"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", s, m.cell(key{"put-1", "avg_ms", s}), above, m.cell(key{"put-1", "fsync_avg_ms", s}), beyond, tgt, met)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func cell(v float64, ok bool, failed, unavailable int) string {
	switch {
	case ok && failed > 0:
		return fmt.Sprintf("%s (%d failed)", fmtValue(v), failed)
	case ok:
		return fmtValue(v)
	case unavailable > 0:
		return "not available yet"
	case failed > 0:
		return "n/a (failed)"
	}
	return "n/a"
}

// median of vs; the median of an even count is the mean of the two middle
// values.
func median(vs []float64) (float64, bool) {
	if len(vs) == 0 {
		return 0, false
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// fmtValue prints a median with as many digits as matter.
func fmtValue(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// fmtTarget prints a target as written in the spec (2.0, 0.6, 1.5).
func fmtTarget(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// rawTable lists every round's numbers, one line per (bench, metric).
func rawTable(results []result) string {
	type key struct{ bench, metric string }
	var order []key
	per := map[key]map[string][]string{}
	for _, r := range results {
		k := key{r.bench, r.metric}
		if per[k] == nil {
			per[k] = map[string][]string{}
			order = append(order, k)
		}
		per[k][r.server] = append(per[k][r.server], r.value)
	}
	var b strings.Builder
	b.WriteString("| Benchmark metric | metastore per round | etcd per round |\n|---|---|---|\n")
	for _, k := range order {
		if f, ok := per[k]["floor"]; ok {
			fmt.Fprintf(&b, "| %s %s | measured without a server: %s | |\n", k.bench, k.metric, strings.Join(f, ", "))
			continue
		}
		fmt.Fprintf(&b, "| %s %s | %s | %s |\n", k.bench, k.metric, strings.Join(per[k]["metastore"], ", "), strings.Join(per[k]["etcd"], ", "))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// withPinned follows each row with its pinned twin (the benchmark's name
// plus "-pinned"), which has no target of its own.
func withPinned(rows []cpuRow) []cpuRow {
	var out []cpuRow
	for _, r := range rows {
		out = append(out, r, cpuRow{r.label + ", pinned", r.bench + "-pinned", "-", 0})
	}
	return out
}
