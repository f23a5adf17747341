package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Where a server's resident memory is (suite mode, at each memory point):
// issue 10's RSS targets compare peak RSS, and this splits the RSS of the
// same moment into the pages of the binary and other mapped files, and the
// anonymous memory into what the Go runtime holds (heap in use, heap idle
// but not yet returned to the kernel, goroutine stacks, the runtime's own
// structures) and the rest (C allocations: Pebble's memtables and block
// cache in a cgo build). Both servers export the Go runtime's figures as
// go_memstats_* on /metrics.

// memParts are the rows of the memory table, in order, with the metric
// each is recorded under.
var memParts = []struct{ label, metric string }{
	{"RSS (VmRSS) at this point", "rss_mib"},
	{"file-backed: the binary's pages and other mapped files (RssFile)", "rss_file_mib"},
	{"anonymous (RssAnon)", "rss_anon_mib"},
	{"  Go heap in use", "go_heap_inuse_mib"},
	{"  Go heap idle, not yet returned to the kernel", "go_heap_idle_mib"},
	{"  goroutine stacks", "go_stacks_mib"},
	{"  Go runtime's own structures (spans, GC metadata, ...)", "go_runtime_mib"},
	{"  outside the Go runtime (C allocations: Pebble's memtables and cache with cgo)", "non_go_mib"},
}

// goMemstats reads the Go runtime's memory figures (bytes) from a member's
// /metrics.
func goMemstats(ctx context.Context, port int) (map[string]float64, error) {
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	fams, err := metricFamilies(ctx, url)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, name := range []string{"go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes",
		"go_memstats_stack_inuse_bytes", "go_memstats_mspan_inuse_bytes", "go_memstats_mcache_inuse_bytes",
		"go_memstats_buck_hash_sys_bytes", "go_memstats_gc_sys_bytes", "go_memstats_other_sys_bytes"} {
		f := fams[name]
		if f == nil || len(f.GetMetric()) == 0 || f.GetMetric()[0].GetGauge() == nil {
			return nil, fmt.Errorf("%s: no %s", url, name)
		}
		out[name] = f.GetMetric()[0].GetGauge().GetValue()
	}
	return out, nil
}

// memSplit turns /proc's RssAnon and RssFile (kB) and the runtime's figures
// (bytes) into memParts' values in MiB.
func memSplit(rssKB, anonKB, fileKB int64, ms map[string]float64) map[string]float64 {
	const mib = 1 << 20
	heapIdle := ms["go_memstats_heap_idle_bytes"] - ms["go_memstats_heap_released_bytes"]
	runtimeOwn := ms["go_memstats_mspan_inuse_bytes"] + ms["go_memstats_mcache_inuse_bytes"] +
		ms["go_memstats_buck_hash_sys_bytes"] + ms["go_memstats_gc_sys_bytes"] + ms["go_memstats_other_sys_bytes"]
	goTotal := ms["go_memstats_heap_inuse_bytes"] + heapIdle + ms["go_memstats_stack_inuse_bytes"] + runtimeOwn
	return map[string]float64{
		"rss_mib":           float64(rssKB) / 1024,
		"rss_file_mib":      float64(fileKB) / 1024,
		"rss_anon_mib":      float64(anonKB) / 1024,
		"go_heap_inuse_mib": ms["go_memstats_heap_inuse_bytes"] / mib,
		"go_heap_idle_mib":  heapIdle / mib,
		"go_stacks_mib":     ms["go_memstats_stack_inuse_bytes"] / mib,
		"go_runtime_mib":    runtimeOwn / mib,
		// The runtime's figures count memory it mapped, some of which may
		// not be resident: the remainder is a lower bound, never negative.
		"non_go_mib": max(0, float64(anonKB)*1024-goTotal) / mib,
	}
}

// recordMemSplit records memParts for the first member (a single member is
// where the RSS targets are; with several, the figures are member 0's).
func (h *harness) recordMemSplit(round int, server, label string) {
	if len(h.servers) == 0 {
		return
	}
	pid := h.servers[0].Pid()
	rss, anon, file := procKB(pid, "VmRSS"), procKB(pid, "RssAnon"), procKB(pid, "RssFile")
	ms, err := goMemstats(h.ctx, h.clientPorts[0])
	if err != nil || rss == 0 {
		if err == nil {
			err = fmt.Errorf("no VmRSS in /proc/%d/status", pid)
		}
		h.failf("### round %d, %s, %s: memory split: %v\n", round, server, label, err)
		for _, p := range memParts[1:] {
			h.record(round, server, label, p.metric, "NA")
		}
		return
	}
	v := memSplit(rss, anon, file, ms)
	for _, p := range memParts[1:] { // rss_mib is recorded by recordMem
		h.record(round, server, label, p.metric, fmt.Sprintf("%.1f", v[p.metric]))
	}
}

// memTable shows memParts at each label for both servers (medians), with
// the ratio.
func memTable(labels []struct{ label, point string }, results []result) string {
	m := collect(results)
	var out [][]string
	for _, l := range labels {
		for _, p := range memParts {
			ratio, _, _ := m.compared(l.point, p.metric, "-", 0)
			out = append(out, append(append([]string{l.label, p.label}, m.both(l.point, p.metric)...), ratio))
		}
	}
	return mdTable([]string{"Point", "memory (MiB)", "metastore", "etcd", "ratio"}, out)
}

// metricFamilies reads a Prometheus text exposition from url.
func metricFamilies(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	b, err := getURL(ctx, url, 10*time.Second)
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return fams, nil
}
