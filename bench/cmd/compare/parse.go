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

// summaryTable is the markdown comparison table: medians per (bench,
// metric, server) over the rounds; NA values are left out of a median, a
// row with no value for a server shows "n/a" plus the failure marker.
func summaryTable(spec []specRow, results []result) string {
	type key struct{ bench, metric, server string }
	vals := map[key][]float64{}
	na, unav := map[key]int{}, map[key]int{}
	for _, r := range results {
		k := key{r.bench, r.metric, r.server}
		switch r.value {
		case "NA":
			na[k]++
		case "UNAVAILABLE":
			unav[k]++
		default:
			vals[k] = append(vals[k], num(r.value))
		}
	}
	var b strings.Builder
	b.WriteString("| Benchmark | Metric | metastore (median) | etcd (median) | ratio metastore/etcd | Target | Met? |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, row := range spec {
		km, ke := key{row.bench, row.metric, "metastore"}, key{row.bench, row.metric, "etcd"}
		m, mok := median(vals[km])
		e, eok := median(vals[ke])
		ratio, met := "n/a", "-"
		if mok && eok && e > 0 {
			ratio = fmt.Sprintf("%.2f", m/e)
		}
		tgt := "-"
		switch row.dir {
		case "ge":
			tgt = "≥ " + fmtTarget(row.target) + "×"
		case "le":
			tgt = "≤ " + fmtTarget(row.target) + "×"
		}
		if row.dir != "-" {
			switch {
			case ratio == "n/a":
				met = "not available yet"
			case row.dir == "ge" && m/e >= row.target, row.dir == "le" && m/e <= row.target:
				met = "yes"
			default:
				met = "**no**"
			}
		}
		ms, es := cell(m, mok, na[km], unav[km]), cell(e, eok, na[ke], unav[ke])
		fmt.Fprintf(&b, "| %s | %s (%s) | %s | %s | %s | %s | %s |\n", row.label, row.metric, row.unit, ms, es, ratio, tgt, met)
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
		fmt.Fprintf(&b, "| %s %s | %s | %s |\n", k.bench, k.metric, strings.Join(per[k]["metastore"], ", "), strings.Join(per[k]["etcd"], ", "))
	}
	return strings.TrimSuffix(b.String(), "\n")
}
