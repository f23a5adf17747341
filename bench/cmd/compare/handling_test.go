package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHistogramQuantile(t *testing.T) {
	// 100 requests: 20 within 10 ms, 80 within 25 ms, 99 within 50 ms, 1 above 100 ms.
	h := histogram{0.005: 0, 0.01: 20, 0.025: 80, 0.05: 99, 0.1: 99, math.Inf(1): 100}
	for _, c := range []struct{ q, want float64 }{
		{0.5, 0.01 + 0.015*30/60}, // in (10, 25] ms: 30 of its 60
		{0.2, 0.01},
		{0.99, 0.05},
		{0.995, 0.1}, // in +Inf: the highest finite bound
	} {
		got, ok := h.quantile(c.q)
		if !ok || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("quantile(%v) = %v, %v; want %v", c.q, got, ok, c.want)
		}
	}
	if w, ok := h.within(0.05); !ok || w != 0.99 {
		t.Errorf("within(50ms) = %v, %v; want 0.99", w, ok)
	}
	if _, ok := (histogram{0.01: 0, math.Inf(1): 0}).quantile(0.5); ok {
		t.Error("an empty histogram has a quantile")
	}
	d := h.sub(histogram{0.01: 20, 0.025: 20, 0.05: 20, 0.1: 20, math.Inf(1): 20})
	if d[0.01] != 0 || d[0.025] != 60 || d[math.Inf(1)] != 80 {
		t.Errorf("sub = %v", d)
	}
}

const exposition = `# HELP grpc_server_handling_seconds Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.
# TYPE grpc_server_handling_seconds histogram
grpc_server_handling_seconds_bucket{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary",le="0.01"} %d
grpc_server_handling_seconds_bucket{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary",le="0.05"} %d
grpc_server_handling_seconds_bucket{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary",le="+Inf"} %d
grpc_server_handling_seconds_sum{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 1
grpc_server_handling_seconds_count{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} %d
grpc_server_handling_seconds_bucket{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary",le="0.01"} 1000
grpc_server_handling_seconds_bucket{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary",le="0.05"} 1000
grpc_server_handling_seconds_bucket{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary",le="+Inf"} 1000
grpc_server_handling_seconds_sum{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 1
grpc_server_handling_seconds_count{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 1000
`

// The histogram of one method is read from every member and summed; the
// difference of two scrapes is what the benchmark between them did.
func TestScrapeHandlingSumsTheMembers(t *testing.T) {
	calls := 0
	serve := func(scale int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls++
			n := calls // later scrapes see more requests
			fmt.Fprintf(w, exposition, 10*n*scale, 19*n*scale, 20*n*scale, 20*n*scale)
		}))
	}
	a, b := serve(1), serve(1)
	defer a.Close()
	defer b.Close()
	ports := []int{a.Listener.Addr().(*net.TCPAddr).Port, b.Listener.Addr().(*net.TCPAddr).Port}
	before, err := scrapeHandling(context.Background(), ports, "Put")
	if err != nil {
		t.Fatal(err)
	}
	after, err := scrapeHandling(context.Background(), ports, "Put")
	if err != nil {
		t.Fatal(err)
	}
	// before: members at n=1 and n=2 (30 requests in all); after: n=3 and 4 (70).
	d := after.sub(before)
	if d[math.Inf(1)] != 80 || d[0.01] != 40 || d[0.05] != 76 {
		t.Fatalf("difference %v, want 80 requests, 40 within 10 ms, 76 within 50 ms", d)
	}
	if _, err := scrapeHandling(context.Background(), ports, "Txn"); err == nil || !strings.Contains(err.Error(), "Txn") {
		t.Fatalf("a method without a histogram: %v", err)
	}
	none := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "# TYPE up gauge\nup 1")
	}))
	defer none.Close()
	if _, err := scrapeHandling(context.Background(), []int{none.Listener.Addr().(*net.TCPAddr).Port}, "Put"); err == nil ||
		!strings.Contains(err.Error(), "--metrics extensive") {
		t.Fatalf("a server without the histogram: %v", err)
	}
}

func TestRecordHandling(t *testing.T) {
	h := &harness{cfg: &config{}}
	before := histogram{0.01: 0, 0.05: 0, math.Inf(1): 0}
	after := histogram{0.01: 50, 0.05: 99, math.Inf(1): 100}
	h.recordHandling(1, "metastore", "put-1000", before, after, nil)
	got := map[string]string{}
	for _, r := range h.results {
		got[r.metric] = r.value
	}
	if got["handled_p50_ms"] != "10.00" || got["handled_p99_ms"] != "50.00" || got["handled_within_50ms_pct"] != "99.00" {
		t.Fatalf("recorded %v", got)
	}
	h.record(1, "metastore", "put-1000", "p99_ms", "90")
	h.recordHandling(1, "etcd", "put-1000", nil, nil, fmt.Errorf("no histogram"))
	for _, r := range h.results {
		if r.server == "etcd" && r.value != "NA" {
			t.Errorf("%s = %q after a failed scrape, want NA", r.metric, r.value)
		}
	}
	table := handlingTable([]cpuRow{{"put, 1 client", "put-1", "-", 0}, {"put, 1000 clients", "put-1000", "-", 0}}, h.results)
	if strings.Contains(table, "put, 1 client") || !strings.Contains(table, "| put, 1000 clients | p99 inside the handler (ms) | 50.0 |") {
		t.Fatalf("table:\n%s", table)
	}
	if handlingMethod("txn-put-1000") != "Txn" || handlingMethod("range-s-1000") != "Range" || handlingMethod("put-1") != "Put" {
		t.Fatal("benchmark to method")
	}
}
