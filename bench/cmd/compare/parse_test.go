package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	for _, args := range [][]string{{"--large", "--watchers"}, {"--members", "6"}, {"--rounds", "0"}, {"extra"}} {
		if _, err := parseConfig(args, "/repo"); err == nil {
			t.Errorf("parseConfig(%q) accepted", args)
		}
	}
	t.Setenv("BENCH_PUT_TOTAL", "12x")
	if _, err := parseConfig(nil, "/repo"); err == nil || !strings.Contains(err.Error(), "BENCH_PUT_TOTAL must be a positive integer") {
		t.Errorf("bad BENCH_PUT_TOTAL: %v", err)
	}
}
