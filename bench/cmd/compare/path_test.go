package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/metastore/metastore/bench/putpath"
)

// The path table shows each category's median per server and the ratio,
// under the latency the load generator saw; a failed trace is recorded as
// NA for every figure, so the table says so instead of showing zeros.
func TestPathTableComparesTheCriticalPaths(t *testing.T) {
	h := &harness{cfg: &config{path: true}, pathDetail: map[string]string{}}
	sum := putpath.Summary{Requests: 1500, TotalUs: 400, Goroutines: 6, Us: map[string]float64{putpath.CatSync: 200, putpath.CatSched: 50}}
	h.recordPath(1, "metastore", "put-1", traced{sum: sum, detail: "the table"})
	h.recordPath(2, "metastore", "put-1", traced{err: errors.New("trace: no request path found")})
	sum.TotalUs, sum.Us[putpath.CatSync] = 500, 250
	h.recordPath(1, "etcd", "put-1", traced{sum: sum})
	h.results = append(h.results, result{1, "metastore", "put-1", "avg_ms", "0.5"}, result{1, "etcd", "put-1", "avg_ms", "0.6"})
	got := pathTable("put-1", h.results)
	for _, want := range []string{
		"| put, 1 client | metastore | etcd | ratio |",
		"| average latency at the load generator (ms) | 0.5 | 0.6 | 0.83 |",
		"| **critical path inside the server (µs)**, of which: | 400 (1 failed) | 500 | 0.80 |",
		"|   " + putpath.CatSync + " | 200 (1 failed) | 250 | 0.80 |",
		"|   " + putpath.CatSched + " | 50.0 (1 failed) | 50.0 | 1.00 |",
		"|   " + putpath.CatRaft + " | 0 (1 failed) | 0 | n/a |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("path table lacks %q:\n%s", want, got)
		}
	}
	if h.pathDetail["metastore"] != "round 1: the table" {
		t.Errorf("per-goroutine table kept: %q", h.pathDetail["metastore"])
	}
	if !strings.Contains(h.failures.String(), "round 2, metastore, put-1: trace: no request path found") {
		t.Errorf("failure not reported: %q", h.failures.String())
	}
}
