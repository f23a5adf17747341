package main

import (
	"context"
	"fmt"

	dto "github.com/prometheus/client_model/go"
)

// walFsyncMetric is the histogram of the Raft log's fsyncs, which etcd and
// metastore both export: its sample count is the number of syncs, its sum
// the time they took. etcd times the fdatasync of its WAL file alone;
// metastore times the whole synced Pebble commit that carries the entries
// (the write, the fdatasync and the hand-offs to and from Pebble's log
// writer), so metastore's average is the larger share of the same work.
const walFsyncMetric = "etcd_disk_wal_fsync_duration_seconds"

// syncTotals is what walFsyncMetric counted so far, summed over members.
type syncTotals struct {
	count   float64 // syncs
	seconds float64 // time in them
}

// fsyncTotals sums the Raft log's fsyncs and their time over the members
// whose client ports are given.
func fsyncTotals(ctx context.Context, ports []int) (syncTotals, error) {
	var t syncTotals
	for _, port := range ports {
		fams, err := metricFamilies(ctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			return syncTotals{}, err
		}
		n, err := histogramTotals(fams, walFsyncMetric)
		if err != nil {
			return syncTotals{}, fmt.Errorf("127.0.0.1:%d: %w", port, err)
		}
		t.count += n.count
		t.seconds += n.seconds
	}
	return t, nil
}

// histogramTotals is the sample count and sum of the histogram name,
// summed over its label sets.
func histogramTotals(fams map[string]*dto.MetricFamily, name string) (syncTotals, error) {
	fam := fams[name]
	if fam == nil {
		return syncTotals{}, fmt.Errorf("no %s", name)
	}
	var t syncTotals
	for _, m := range fam.GetMetric() {
		t.count += float64(m.GetHistogram().GetSampleCount())
		t.seconds += m.GetHistogram().GetSampleSum()
	}
	return t, nil
}

// syncAvgMs is the average of the syncs between two readings, in
// milliseconds, "NA" when none happened or a reading is missing.
func syncAvgMs(before, after syncTotals, ok bool) string {
	n := after.count - before.count
	if !ok || n <= 0 {
		return "NA"
	}
	return fmt.Sprintf("%.3f", (after.seconds-before.seconds)/n*1000)
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
		r := append(append([]string{row.label}, m.both(row.bench, "req_per_fsync")...), ratio)
		out = append(out, append(r, m.both(row.bench, "fsync_avg_ms")...))
	}
	return mdTable([]string{"Benchmark", "requests per fsync, metastore", "requests per fsync, etcd", "ratio",
		"sync avg, metastore (ms)", "sync avg, etcd (ms)"}, out)
}
