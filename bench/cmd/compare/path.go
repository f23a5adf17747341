package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/metastore/metastore/bench/putpath"
)

// pathDelay is how far into the benchmark --path starts its trace: past
// the connection's set-up, well before the end of 5,000 puts.
const pathDelay = 500 * time.Millisecond

// traced is what one trace showed.
type traced struct {
	sum    putpath.Summary
	detail string // the per-goroutine table
	err    error
}

// startTrace, in --path mode, takes a Go execution trace of member 0 for
// BENCH_PATH_SECONDS from pathDelay into the benchmark, and returns the
// function that records what it showed once the benchmark has ended.
func (h *harness) startTrace(ctx context.Context, round int, server, bench, out string) func() {
	if !h.cfg.path {
		return func() {}
	}
	got := make(chan traced, 1)
	go func() { got <- h.takeTrace(ctx, out) }()
	return func() { h.recordPath(round, server, bench, <-got) }
}

func (h *harness) takeTrace(ctx context.Context, out string) traced {
	select {
	case <-time.After(pathDelay):
	case <-ctx.Done():
		return traced{err: fmt.Errorf("trace: %w", ctx.Err())}
	}
	secs := h.cfg.n["PATH_SECONDS"]
	url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/trace?seconds=%d", h.clientPorts[0], secs)
	b, err := getURL(ctx, url, time.Duration(secs)*time.Second+30*time.Second)
	if err != nil {
		return traced{err: fmt.Errorf("trace: %w", err)}
	}
	_ = os.WriteFile(out+".trace", b, 0o644)
	return analyzeTrace(b)
}

// analyzeTrace follows the request paths of one trace (bench/putpath).
func analyzeTrace(b []byte) traced {
	hist, err := putpath.Read(bytes.NewReader(b))
	if err != nil {
		return traced{err: fmt.Errorf("trace: %w", err)}
	}
	paths, tally := hist.Paths(putpath.DefaultEnd)
	if len(paths) == 0 {
		return traced{err: fmt.Errorf("trace (%d bytes, written beside the benchmark's output; --keep keeps it): %w (%s)", len(b), putpath.ErrNoPath, tally)}
	}
	return traced{sum: hist.Summarize(paths), detail: hist.Report(paths)}
}

// pathMetric is the metric under which a category's time is recorded.
func pathMetric(i int) string { return "path_cat" + strconv.Itoa(i) + "_us" }

func (h *harness) recordPath(round int, server, bench string, got traced) {
	metrics := []string{"path_requests", "path_total_us", "path_goroutines"}
	for i := range putpath.Categories {
		metrics = append(metrics, pathMetric(i))
	}
	if got.err != nil {
		h.failf("### round %d, %s, %s: %v\n", round, server, bench, got.err)
		for _, m := range metrics {
			h.record(round, server, bench, m, "NA")
		}
		return
	}
	if _, ok := h.pathDetail[server]; !ok {
		h.pathDetail[server] = fmt.Sprintf("round %d: %s", round, got.detail)
	}
	h.record(round, server, bench, "path_requests", strconv.Itoa(got.sum.Requests))
	h.record(round, server, bench, "path_total_us", fmt.Sprintf("%.1f", got.sum.TotalUs))
	h.record(round, server, bench, "path_goroutines", fmt.Sprintf("%.2f", got.sum.Goroutines))
	for i, c := range putpath.Categories {
		h.record(round, server, bench, pathMetric(i), fmt.Sprintf("%.1f", got.sum.Us[c]))
	}
}

// pathTable compares, for bench, both servers' mean critical path of a
// request by category (medians over rounds), under the latency the load
// generator saw.
func pathTable(bench string, results []result) string {
	m := collect(results)
	row := func(label, metric string) []string {
		ratio, _, _ := m.compared(bench, metric, "-", 0)
		return append(append([]string{label}, m.both(bench, metric)...), ratio)
	}
	rows := [][]string{
		row("average latency at the load generator (ms)", "avg_ms"),
		row("requests followed in the trace", "path_requests"),
		row("goroutines on a request's path", "path_goroutines"),
		row("**critical path inside the server (µs)**, of which:", "path_total_us"),
	}
	for i, c := range putpath.Categories {
		rows = append(rows, row("  "+c, pathMetric(i)))
	}
	return mdTable([]string{"put, 1 client", "metastore", "etcd", "ratio"}, rows)
}
