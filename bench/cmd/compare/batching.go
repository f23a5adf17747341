package main

import (
	"context"
	"fmt"

	dto "github.com/prometheus/client_model/go"
)

// walFsyncMetric is the histogram of the Raft log's fsyncs, which etcd and
// metastore both export: its sample count is the number of syncs.
const walFsyncMetric = "etcd_disk_wal_fsync_duration_seconds"

// fsyncCount sums the Raft log's fsyncs over the members whose client ports
// are given.
func fsyncCount(ctx context.Context, ports []int) (float64, error) {
	var sum float64
	for _, port := range ports {
		fams, err := metricFamilies(ctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			return 0, err
		}
		n, err := histogramCount(fams, walFsyncMetric)
		if err != nil {
			return 0, fmt.Errorf("127.0.0.1:%d: %w", port, err)
		}
		sum += n
	}
	return sum, nil
}

// histogramCount is the sample count of the histogram name, summed over
// its label sets.
func histogramCount(fams map[string]*dto.MetricFamily, name string) (float64, error) {
	fam := fams[name]
	if fam == nil {
		return 0, fmt.Errorf("no %s", name)
	}
	var n float64
	for _, m := range fam.GetMetric() {
		n += float64(m.GetHistogram().GetSampleCount())
	}
	return n, nil
}

// requestsPerFsync is the figure the batching table shows: the requests
// of a benchmark over the fsyncs of each member's log meanwhile (the sum
// over members divided by their number), "NA" when nothing was synced or
// the counts are missing.
func requestsPerFsync(requests, before, after float64, members int, ok bool) string {
	synced := (after - before) / float64(max(members, 1))
	if !ok || requests <= 0 || synced <= 0 {
		return "NA"
	}
	return fmt.Sprintf("%.1f", requests/synced)
}

// batchingTable shows, per benchmark that syncs, how many requests each fsync of the
// Raft log made durable: under load the log is synced back to back, so a
// server that syncs faster persists smaller batches and pays its per-batch
// work more often (docs/adr/0026-raft-log-in-its-own-files.md), which this
// figure shows beside the CPU per request.
func batchingTable(rows []cpuRow, results []result) string {
	m := collect(results)
	var out [][]string
	for _, row := range rows {
		_, mok := m.median(key{row.bench, "req_per_fsync", "metastore"})
		_, eok := m.median(key{row.bench, "req_per_fsync", "etcd"})
		if !mok && !eok {
			continue // reads: nothing is synced
		}
		ratio, _, _ := m.compared(row.bench, "req_per_fsync", "-", 0)
		out = append(out, append(append([]string{row.label}, m.both(row.bench, "req_per_fsync")...), ratio))
	}
	return mdTable([]string{"Benchmark", "requests per fsync, metastore", "requests per fsync, etcd", "ratio"}, out)
}
