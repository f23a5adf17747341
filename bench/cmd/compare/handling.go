package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// Time inside the server's handler (--profile). A latency the load generator
// measures from 1000 clients includes gRPC's transport on both sides and
// the load generator's own wait for a CPU on the shared machine; the
// servers' grpc_server_handling_seconds histogram (etcd's with --metrics
// extensive, ours always) measures from the handler's start to its end. The
// two side by side say how much of a p99 is the server's handling.

// handlingMethod is the gRPC method a benchmark calls.
func handlingMethod(bench string) string {
	switch {
	case strings.HasPrefix(bench, "put"):
		return "Put"
	case strings.HasPrefix(bench, "range"):
		return "Range"
	case strings.HasPrefix(bench, "txn"):
		return "Txn"
	}
	return ""
}

// histogram is cumulative bucket counts by upper bound (seconds).
type histogram map[float64]float64

// scrapeHandling sums the KV method's handling histogram over the members.
func scrapeHandling(ctx context.Context, ports []int, method string) (histogram, error) {
	h := histogram{}
	for _, port := range ports {
		url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
		if err := scrapeInto(ctx, url, method, h); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func scrapeInto(ctx context.Context, url, method string, h histogram) error {
	fams, err := metricFamilies(ctx, url)
	if err != nil {
		return err
	}
	fam := fams["grpc_server_handling_seconds"]
	if fam == nil {
		return fmt.Errorf("%s: no grpc_server_handling_seconds (etcd needs --metrics extensive)", url)
	}
	found := false
	for _, m := range fam.GetMetric() {
		if label(m, "grpc_service") != "etcdserverpb.KV" || label(m, "grpc_method") != method || m.GetHistogram() == nil {
			continue
		}
		found = true
		for _, b := range m.GetHistogram().GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) { // the sample count below stands for it
				h[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
		}
		h[math.Inf(1)] += float64(m.GetHistogram().GetSampleCount())
	}
	if !found {
		return fmt.Errorf("%s: no handling histogram of etcdserverpb.KV/%s", url, method)
	}
	return nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sub is h minus an earlier scrape of the same histogram.
func (h histogram) sub(before histogram) histogram {
	d := histogram{}
	for le, c := range h {
		d[le] = c - before[le]
	}
	return d
}

// quantile is the q-quantile by linear interpolation within its bucket, as
// Prometheus' histogram_quantile computes it; a quantile in the +Inf bucket
// is the highest finite bound. ok is false for an empty histogram.
func (h histogram) quantile(q float64) (v float64, ok bool) {
	les := make([]float64, 0, len(h))
	for le := range h {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 || h[les[len(les)-1]] <= 0 {
		return 0, false
	}
	total := h[les[len(les)-1]]
	rank := q * total
	prevLe, prevC := 0.0, 0.0
	for _, le := range les {
		c := h[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return prevLe, true
			}
			if c == prevC {
				return le, true
			}
			return prevLe + (le-prevLe)*(rank-prevC)/(c-prevC), true
		}
		prevLe, prevC = le, c
	}
	return prevLe, true
}

// within is the fraction of requests handled within le seconds.
func (h histogram) within(le float64) (float64, bool) {
	total := h[math.Inf(1)]
	if total <= 0 {
		return 0, false
	}
	return h[le] / total, true
}

// recordHandling records the handling time of bench's requests between two
// scrapes: the interpolated median and p99, and the share within 50 ms.
func (h *harness) recordHandling(round int, server, bench string, before, after histogram, err error) {
	metrics := []string{"handled_p50_ms", "handled_p99_ms", "handled_within_50ms_pct"}
	if err != nil {
		h.failf("### round %d, %s, %s: handling time: %v\n", round, server, bench, err)
		for _, m := range metrics {
			h.record(round, server, bench, m, "NA")
		}
		return
	}
	d := after.sub(before)
	p50, ok50 := d.quantile(0.5)
	p99, ok99 := d.quantile(0.99)
	w, okw := d.within(0.05)
	for i, v := range []struct {
		x  float64
		ok bool
	}{{p50 * 1000, ok50}, {p99 * 1000, ok99}, {w * 100, okw}} {
		val := "NA"
		if v.ok {
			val = fmt.Sprintf("%.2f", v.x)
		}
		h.record(round, server, bench, metrics[i], val)
	}
}

// handlingTable shows, for the 1000-client benchmarks, the latency the load
// generator measured beside the time inside the servers' handlers.
func handlingTable(rows []cpuRow, results []result) string {
	m := collect(results)
	var out [][]string
	for _, row := range rows {
		if !strings.HasSuffix(row.bench, "-1000") {
			continue
		}
		for _, x := range []struct{ label, metric string }{
			{"p99 at the load generator (ms)", "p99_ms"},
			{"p99 inside the handler (ms)", "handled_p99_ms"},
			{"average at the load generator (ms)", "avg_ms"},
			{"median inside the handler (ms)", "handled_p50_ms"},
			{"handled within 50 ms (%)", "handled_within_50ms_pct"},
		} {
			ratio, _, _ := m.compared(row.bench, x.metric, "-", 0)
			out = append(out, append(append([]string{row.label, x.label}, m.both(row.bench, x.metric)...), ratio))
		}
	}
	return mdTable([]string{"Benchmark", "latency", "metastore", "etcd", "ratio"}, out)
}
