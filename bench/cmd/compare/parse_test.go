package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A report as etcd's benchmark tool prints it for watch-latency: a put
// summary, then the watch events summary.
const watchLatencyReport = `
Put summary:

Summary:
  Total:	2.0000 secs.
  Slowest:	0.0100 secs.
  Average:	0.0050 secs.
  Requests/sec:	10.0000

Latency distribution:
  99% in 0.0100 secs.

Watch events summary:

Summary:
  Total:	2.5000 secs.
  Average:	0.0012 secs.
  Requests/sec:	4000.1234

Latency distribution:
  10% in 0.0001 secs.
  99% in 0.0034 secs.

Error distribution:
  [3]	rpc error: code = Unavailable
  [2]	context deadline exceeded
`

func TestParseReportSections(t *testing.T) {
	all := parseReport(watchLatencyReport, "all")
	if all.rps != "4000.1" || all.avgMs != "1.200" || all.p99Ms != "3.400" || all.errors != 5 || all.total != 2.5 {
		t.Errorf("all: %+v", all)
	}
	w := parseReport(watchLatencyReport, "watch")
	if w.rps != "4000.1" || w.avgMs != "1.200" || w.p99Ms != "3.400" || w.errors != 5 {
		t.Errorf("watch: %+v", w)
	}
	put := parseReport(strings.SplitN(watchLatencyReport, "Watch events summary:", 2)[0], "all")
	if put.rps != "10.0" || put.avgMs != "5.000" || put.p99Ms != "10.000" || put.errors != 0 || put.total != 2 {
		t.Errorf("put part: %+v", put)
	}
	if e := parseReport("Watch creation summary:\n  Requests/sec: 5\n", "events"); e.rps != "NA" || e.hasTotal {
		t.Errorf("events section absent: %+v", e)
	}
	if none := parseReport("Error: connection refused\n", "all"); none.rps != "NA" || none.avgMs != "NA" || none.p99Ms != "NA" {
		t.Errorf("failed run: %+v", none)
	}
}

func TestSummaryTableMediansRatiosAndMarkers(t *testing.T) {
	spec := []specRow{
		{"put", "put-1000", "rps", "req/s", "ge", 2.0},
		{"put", "put-1000", "p99_ms", "ms", "le", 1.0},
		{"watch", "watch-latency", "p99_ms", "ms", "le", 1.0},
		{"disk", "end", "disk_mib", "MiB", "-", 0},
	}
	res := []result{
		{1, "metastore", "put-1000", "rps", "300"}, {2, "metastore", "put-1000", "rps", "100"}, {3, "metastore", "put-1000", "rps", "NA"},
		{1, "etcd", "put-1000", "rps", "50"}, {2, "etcd", "put-1000", "rps", "150"},
		{1, "metastore", "put-1000", "p99_ms", "12"}, {1, "etcd", "put-1000", "p99_ms", "6"},
		{1, "metastore", "watch-latency", "p99_ms", "UNAVAILABLE"}, {1, "etcd", "watch-latency", "p99_ms", "1.5"},
		{1, "metastore", "end", "disk_mib", "1.25"}, {1, "etcd", "end", "disk_mib", "NA"},
	}
	want := `| Benchmark | Metric | metastore (median) | etcd (median) | ratio metastore/etcd | Target | Met? |
|---|---|---|---|---|---|---|
| put | rps (req/s) | 200 (1 failed) | 100 | 2.00 | ≥ 2.0× | yes |
| put | p99_ms (ms) | 12.0 | 6 | 2.00 | ≤ 1.0× | **no** |
| watch | p99_ms (ms) | not available yet | 1.5 | n/a | ≤ 1.0× | not available yet |
| disk | disk_mib (MiB) | 1.25 | n/a (failed) | n/a | - | - |`
	if got := summaryTable(spec, res); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	raw := rawTable(res[:5])
	if !strings.Contains(raw, "| put-1000 rps | 300, 100, NA | 50, 150 |") {
		t.Errorf("raw table:\n%s", raw)
	}
}

func TestShellQuoteLikeBashPrintfQ(t *testing.T) {
	for in, want := range map[string]string{
		"--total=5": "--total=5",
		"range":     "range",
		"\x80":      `$'\200'`,
		"\xff":      `$'\377'`,
		"a b":       `$'a b'`,
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestWriteSectionReplacesOnlyItsSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.md")
	doc := "# B\n\n<!-- BEGIN bench/compare.sh suite -->\nold suite\n<!-- END bench/compare.sh suite -->\n\n<!-- BEGIN bench/compare.sh large -->\nold large\n<!-- END bench/compare.sh large -->\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSection(path, "suite", "new suite\n"); err != nil {
		t.Fatal(err)
	}
	if err := writeSection(path, "watchers", "new watchers\n"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(doc, "old suite", "new suite", 1) +
		"\n<!-- BEGIN bench/compare.sh watchers -->\nnew watchers\n<!-- END bench/compare.sh watchers -->\n"
	if string(b) != want {
		t.Errorf("doc:\n%s\nwant:\n%s", b, want)
	}
}

func TestParseConfigModesAndValidation(t *testing.T) {
	t.Setenv("BENCH_ROUNDS", "")
	t.Setenv("BENCH_MEMBERS", "")
	t.Setenv("BENCH_ORDER", "")
	t.Setenv("BENCH_PUT_TOTAL", "")
	c, err := parseConfig([]string{"--quick", "--members", "3"}, "/repo")
	if err != nil {
		t.Fatal(err)
	}
	if c.rounds != 1 || c.members != 3 || c.section != "suite-3-members" || c.n["PUT_TOTAL"] != 5000 || c.n["TXN_TOTAL"] != 5000 {
		t.Errorf("--quick --members 3: %+v", c)
	}
	c, err = parseConfig([]string{"--large", "--write-docs"}, "/repo")
	if err != nil {
		t.Fatal(err)
	}
	if c.rounds != 1 || c.section != "large" || c.writeDocs != "/repo/docs/benchmarks.md" || c.n["PUT_TOTAL"] != 100000 {
		t.Errorf("--large --write-docs: %+v", c)
	}
	c, err = parseConfig([]string{"--path"}, "/repo")
	if err != nil {
		t.Fatal(err)
	}
	if c.rounds != 3 || c.mode != "path" || c.section != "path" || c.n["PATH_SECONDS"] != 1 || c.n["PUT1_TOTAL"] != 5000 {
		t.Errorf("--path: %+v", c)
	}
	// --quick shortens everything but the put-1 a trace needs.
	c, err = parseConfig([]string{"--path", "--quick"}, "/repo")
	if err != nil {
		t.Fatal(err)
	}
	if c.rounds != 1 || c.n["PUT1_TOTAL"] != 5000 || c.n["PUT_TOTAL"] != 5000 {
		t.Errorf("--path --quick: %+v", c)
	}
	for _, args := range [][]string{{"--large", "--watchers"}, {"--path", "--profile"}, {"--members", "6"}, {"--rounds", "0"}, {"extra"}} {
		if _, err := parseConfig(args, "/repo"); err == nil {
			t.Errorf("parseConfig(%q) accepted", args)
		}
	}
	t.Setenv("BENCH_PUT_TOTAL", "12x")
	if _, err := parseConfig(nil, "/repo"); err == nil || !strings.Contains(err.Error(), "BENCH_PUT_TOTAL must be a positive integer") {
		t.Errorf("bad BENCH_PUT_TOTAL: %v", err)
	}
}

func TestCPUTableServerAndLoadGeneratorWithTargets(t *testing.T) {
	res := []result{
		{1, "metastore", "put-1000", "server_cpu_us", "50"}, {2, "metastore", "put-1000", "server_cpu_us", "40"}, {3, "metastore", "put-1000", "server_cpu_us", "45"},
		{1, "etcd", "put-1000", "server_cpu_us", "100"}, {2, "etcd", "put-1000", "server_cpu_us", "80"}, {3, "etcd", "put-1000", "server_cpu_us", "90"},
		{1, "metastore", "put-1000", "client_cpu_us", "44"}, {1, "etcd", "put-1000", "client_cpu_us", "40"},
		{1, "metastore", "txn-put-1000", "server_cpu_us", "70"}, {1, "etcd", "txn-put-1000", "server_cpu_us", "100"},
		{1, "metastore", "txn-put-1000", "client_cpu_us", "NA"}, {1, "etcd", "txn-put-1000", "client_cpu_us", "55"},
	}
	rows := []cpuRow{{"put", "put-1000", "le", 0.6}, {"txn", "txn-put-1000", "le", 0.6}, {"watch", "watch-latency", "-", 0}}
	want := `| Benchmark | server CPU/req metastore (µs) | server CPU/req etcd (µs) | ratio | Target | Met? | load generator CPU/req with metastore (µs) | with etcd (µs) | ratio |
|---|---|---|---|---|---|---|---|---|
| put | 45.0 | 90.0 | 0.50 | ≤ 0.6× | yes | 44.0 | 40.0 | 1.10 |
| txn | 70.0 | 100 | 0.70 | ≤ 0.6× | **no** | n/a (failed) | 55.0 | n/a |
| watch | n/a | n/a | n/a | - | - | n/a | n/a | n/a |`
	if got := cpuTable(rows, res); got != want {
		t.Errorf("cpu table:\n%s\nwant:\n%s", got, want)
	}
}

func TestPinnedTableRatiosBesideUnpinned(t *testing.T) {
	res := []result{
		{1, "metastore", "put-1000", "rps", "10000"}, {1, "etcd", "put-1000", "rps", "10000"},
		{1, "metastore", "put-1000-pinned", "rps", "16000"}, {1, "etcd", "put-1000-pinned", "rps", "9000"},
		{2, "metastore", "put-1000-pinned", "rps", "18000"}, {2, "etcd", "put-1000-pinned", "rps", "11000"},
		{1, "metastore", "range-s-1000", "rps", "20000"}, {1, "etcd", "range-s-1000", "rps", "10000"},
		{1, "metastore", "range-s-1000-pinned", "rps", "15000"}, {1, "etcd", "range-s-1000-pinned", "rps", "10000"},
	}
	rows := []cpuRow{{"put", "put-1000", "ge", 1.6}, {"range", "range-s-1000", "ge", 1.6}}
	want := `| Benchmark | unpinned metastore (req/s) | unpinned etcd (req/s) | ratio | pinned metastore (req/s) | pinned etcd (req/s) | ratio | Target (pinned) | Met? |
|---|---|---|---|---|---|---|---|---|
| put | 10000 | 10000 | 1.00 | 17000 | 10000 | 1.70 | ≥ 1.6× | yes |
| range | 20000 | 10000 | 2.00 | 15000 | 10000 | 1.50 | ≥ 1.6× | **no** |`
	if got := pinnedTable(rows, res); got != want {
		t.Errorf("pinned table:\n%s\nwant:\n%s", got, want)
	}
	if got := withPinned(rows[:1]); len(got) != 2 || got[1].bench != "put-1000-pinned" || got[1].dir != "-" || got[1].label != "put, pinned" {
		t.Errorf("withPinned: %+v", got)
	}
}

func TestFloorTablePutAgainstFsyncPlusRoundTrip(t *testing.T) {
	res := []result{
		{1, "floor", floorBench, "fsync_med_ms", "0.400"}, {2, "floor", floorBench, "fsync_med_ms", "0.500"}, {3, "floor", floorBench, "fsync_med_ms", "0.450"},
		{1, "floor", floorBench, "fsync_p99_ms", "1.000"},
		{1, "floor", floorBench, "rtt_med_ms", "0.100"}, {2, "floor", floorBench, "rtt_med_ms", "NA"},
		{1, "floor", floorBench, "rtt_p99_ms", "0.300"},
		{1, "metastore", "put-1", "avg_ms", "0.650"}, {1, "etcd", "put-1", "avg_ms", "0.900"},
		{1, "metastore", "put-1", "fsync_avg_ms", "0.300"}, {1, "etcd", "put-1", "fsync_avg_ms", "NA"},
	}
	want := `| Floor (measured in this run) | median (ms) | p99 (ms) |
|---|---|---|
| fdatasync of a 4 KiB write, data dir's filesystem | 0.45 | 1 |
| (not in the floor) fdatasync of a 4 KiB append, growing the file | n/a | n/a |
| gRPC round trip on 127.0.0.1 (health Check, no work) | 0.1 (1 failed) | 0.3 |
| floor of a put from one client (sum of the medians) | 0.550 | - |

| put, 1 client | avg latency (ms) | above the floor (ms) | Raft log sync, avg (ms) | beyond its sync and the round trip (ms) | Target | Met? |
|---|---|---|---|---|---|---|
| metastore | 0.65 | 0.100 | 0.3 | 0.250 | ≤ 0.15 ms | yes |
| etcd | 0.9 | 0.350 | n/a (failed) | n/a | - | - |`
	if got := floorTable(res, 0.15); got != want {
		t.Errorf("floor table:\n%s\nwant:\n%s", got, want)
	}
	// Without a round-trip floor there is nothing to compare against.
	var noRTT []result
	for _, r := range res {
		if !strings.HasPrefix(r.metric, "rtt") {
			noRTT = append(noRTT, r)
		}
	}
	if got := floorTable(noRTT, 0.15); !strings.Contains(got, "| metastore | 0.65 | n/a | 0.3 | n/a | ≤ 0.15 ms | not available yet |") ||
		!strings.Contains(got, "| floor of a put from one client (sum of the medians) | n/a | - |") {
		t.Errorf("floor table without rtt:\n%s", got)
	}
	raw := rawTable(res[:3])
	if !strings.Contains(raw, "| floor fsync_med_ms | measured without a server: 0.400, 0.500, 0.450 | |") {
		t.Errorf("raw table with floors:\n%s", raw)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 1: time.Millisecond} {
		if got, ok := percentile(ds, p); !ok || got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got, _ := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("p99 of one sample = %v", got)
	}
	if _, ok := percentile(nil, 50); ok {
		t.Error("percentile of no sample")
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("percentile sorted its input in place")
	}
}

func TestBatchingTableRequestsPerFsync(t *testing.T) {
	res := []result{
		{1, "metastore", "put-1000", "req_per_fsync", requestsPerFsync(100000, 10, 4510, 1, true)},
		{1, "etcd", "put-1000", "req_per_fsync", requestsPerFsync(100000, 0, 5000, 1, true)},
		// Three members: each member's log synced 2000 times.
		{1, "metastore", "txn-put-1000", "req_per_fsync", requestsPerFsync(60000, 0, 6000, 3, true)},
		{1, "etcd", "txn-put-1000", "req_per_fsync", requestsPerFsync(60000, 0, 6000, 3, false)},
		// Reads sync nothing: no row.
		{1, "metastore", "range-l-1000", "req_per_fsync", requestsPerFsync(100000, 7, 7, 1, true)},
		{1, "etcd", "range-l-1000", "req_per_fsync", requestsPerFsync(100000, 7, 7, 1, true)},
		{1, "metastore", "put-1000", "fsync_avg_ms", syncAvgMs(syncTotals{10, 1}, syncTotals{4510, 4.6}, true)},
		{1, "etcd", "put-1000", "fsync_avg_ms", syncAvgMs(syncTotals{0, 0}, syncTotals{5000, 2}, true)},
		{1, "metastore", "txn-put-1000", "fsync_avg_ms", syncAvgMs(syncTotals{0, 0}, syncTotals{6000, 3}, false)},
	}
	rows := []cpuRow{{"put", "put-1000", "le", 0.6}, {"range", "range-l-1000", "le", 0.6}, {"txn", "txn-put-1000", "le", 0.6}}
	want := `| Benchmark | requests per fsync, metastore | requests per fsync, etcd | ratio | sync avg, metastore (ms) | sync avg, etcd (ms) |
|---|---|---|---|---|---|
| put | 22.2 | 20.0 | 1.11 | 0.8 | 0.4 |
| txn | 30.0 | n/a (failed) | n/a | n/a (failed) | n/a |`
	if got := batchingTable(rows, res); got != want {
		t.Errorf("batching table:\n%s\nwant:\n%s", got, want)
	}
	if got := requestsPerFsync(100, 5, 5, 1, true); got != "NA" {
		t.Errorf("no syncs: %q, want NA", got)
	}
	if got := syncAvgMs(syncTotals{5, 1}, syncTotals{5, 1}, true); got != "NA" {
		t.Errorf("sync average of no syncs: %q, want NA", got)
	}
}

func TestCoreTableNamesWhatBoundsThePinnedRun(t *testing.T) {
	var res []result
	add := func(round int, server, bench string, rps, srv, cli string) {
		res = append(res, result{round, server, bench, "rps", rps}, result{round, server, bench, "server_cpu_us", srv},
			result{round, server, bench, "client_cpu_us", cli})
	}
	// put: metastore's CPU is the busy one (20000/s × 47 µs = 94 %).
	add(1, "metastore", "put-1000-pinned", "20000", "47.0", "30.0")
	add(2, "metastore", "put-1000-pinned", "19000", "48.0", "31.0")
	add(1, "etcd", "put-1000-pinned", "15000", "64.0", "30.0")
	// range: the load generator's (36000/s × 26 µs = 94 %); the CPU per
	// request of one round pairs with that round's rate only.
	add(1, "metastore", "range-s-1000-pinned", "36000", "22.0", "26.0")
	add(2, "metastore", "range-s-1000-pinned", "10000", "40.0", "50.0")
	add(3, "metastore", "range-s-1000-pinned", "37000", "21.0", "25.0")
	add(1, "etcd", "range-s-1000-pinned", "26000", "37.0", "27.0")
	// txn: neither CPU is busy.
	add(1, "metastore", "txn-put-1000-pinned", "10000", "40.0", "30.0")
	add(1, "etcd", "txn-put-1000-pinned", "NA", "40.0", "30.0")
	rows := []cpuRow{{"put", "put-1000", "ge", 1.6}, {"range", "range-s-1000", "ge", 1.6}, {"txn", "txn-put-1000", "ge", 1.6}}
	want := `| Benchmark, pinned | metastore's CPU busy | its load generator's CPU busy | etcd's CPU busy | its load generator's CPU busy | what bounds metastore's pinned throughput |
|---|---|---|---|---|---|
| put | 93 % | 59 % | 96 % | 45 % | the server's CPU |
| range | 78 % | 92 % | 96 % | 70 % | the load generator |
| txn | 40 % | 30 % | n/a | n/a | neither CPU (serial steps) |`
	if got := coreTable(rows, res); got != want {
		t.Errorf("core table:\n%s\nwant:\n%s", got, want)
	}
}
