package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMemSplit(t *testing.T) {
	const mib = 1 << 20
	ms := map[string]float64{
		"go_memstats_heap_inuse_bytes": 40 * mib, "go_memstats_heap_idle_bytes": 30 * mib,
		"go_memstats_heap_released_bytes": 10 * mib, "go_memstats_stack_inuse_bytes": 8 * mib,
		"go_memstats_mspan_inuse_bytes": 1 * mib, "go_memstats_mcache_inuse_bytes": 0,
		"go_memstats_buck_hash_sys_bytes": 0, "go_memstats_gc_sys_bytes": 3 * mib, "go_memstats_other_sys_bytes": 1 * mib,
	}
	v := memSplit(130*1024, 100*1024, 30*1024, ms)
	want := map[string]float64{"rss_mib": 130, "rss_file_mib": 30, "rss_anon_mib": 100, "go_heap_inuse_mib": 40,
		"go_heap_idle_mib": 20, "go_stacks_mib": 8, "go_runtime_mib": 5, "non_go_mib": 27}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("%s = %v, want %v", k, v[k], w)
		}
	}
	// The runtime's figures may exceed what is resident: never negative.
	if v := memSplit(50*1024, 20*1024, 30*1024, ms); v["non_go_mib"] != 0 {
		t.Errorf("non_go_mib = %v with more mapped than resident, want 0", v["non_go_mib"])
	}
}

func TestGoMemstats(t *testing.T) {
	var body strings.Builder
	for i, n := range []string{"heap_inuse", "heap_idle", "heap_released", "stack_inuse", "mspan_inuse", "mcache_inuse",
		"buck_hash_sys", "gc_sys", "other_sys"} {
		fmt.Fprintf(&body, "# TYPE go_memstats_%s_bytes gauge\ngo_memstats_%s_bytes %d\n", n, n, i+1)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body.String()) }))
	defer srv.Close()
	ms, err := goMemstats(context.Background(), srv.Listener.Addr().(*net.TCPAddr).Port)
	if err != nil {
		t.Fatal(err)
	}
	if ms["go_memstats_heap_inuse_bytes"] != 1 || ms["go_memstats_other_sys_bytes"] != 9 {
		t.Fatalf("read %v", ms)
	}
	short := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes 1\n")
	}))
	defer short.Close()
	if _, err := goMemstats(context.Background(), short.Listener.Addr().(*net.TCPAddr).Port); err == nil ||
		!strings.Contains(err.Error(), "heap_idle") {
		t.Fatalf("a server without every figure: %v", err)
	}
}

func TestMemTable(t *testing.T) {
	results := []result{
		{1, "metastore", "after-put-suite", "rss_file_mib", "30.0"},
		{1, "etcd", "after-put-suite", "rss_file_mib", "20.0"},
	}
	table := memTable([]struct{ label, point string }{{"after the put suite", "after-put-suite"}}, results)
	if !strings.Contains(table, "| after the put suite | file-backed: the binary's pages and other mapped files (RssFile) | 30.0 | 20.0 | 1.50 |") {
		t.Fatalf("table:\n%s", table)
	}
}
