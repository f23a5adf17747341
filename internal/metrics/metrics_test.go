package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func scrape(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	srv := httptest.NewServer(Handler(g))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func TestHandlerExposesEtcdAndMetastoreNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.SetVersion("3.7.3")
	m.SetVersion("3.7.4") // replaces, not adds
	m.SetServerID(0x8e9e05c52164694d)
	m.SetClusterVersion("3.7.0")
	m.HasLeader.Set(1)
	m.IsLeader.Set(1)
	m.PutTotal.Add(3)
	m.WALFsyncDuration.Observe(0.002)
	m.ValidationErrors.WithLabelValues("key_too_large").Inc()
	m.PanicTotal.WithLabelValues("grpc").Inc()
	m.SetSources(Sources{
		DBTotalSize:     func() float64 { return 4096 },
		CurrentRevision: func() float64 { return 42 },
		MemoryUsage:     func() float64 { return 1000 },
		MemoryLimit:     func() float64 { return 2000 },
	})

	out := scrape(t, reg)
	want := []string{
		"# HELP etcd_server_has_leader Whether or not a leader exists. 1 is existence, 0 is not.",
		"# TYPE etcd_server_proposals_committed_total gauge",
		"# TYPE etcd_server_leader_changes_seen_total counter",
		"etcd_server_has_leader 1",
		"etcd_server_is_leader 1",
		"etcd_server_is_learner 0",
		"etcd_server_proposals_pending 0",
		"etcd_server_proposals_failed_total 0",
		`etcd_server_version{server_version="3.7.4"} 1`,
		`etcd_server_id{server_id="8e9e05c52164694d"} 1`,
		`etcd_cluster_version{cluster_version="3.7.0"} 1`,
		`etcd_server_go_version{server_go_version="go`,
		"etcd_server_quota_backend_bytes 0",
		"etcd_mvcc_put_total 3",
		"etcd_mvcc_range_total 0",
		"etcd_mvcc_delete_total 0",
		"etcd_mvcc_txn_total 0",
		"etcd_mvcc_db_total_size_in_bytes 4096",
		"etcd_mvcc_db_total_size_in_use_in_bytes 0",
		"etcd_debugging_mvcc_current_revision 42",
		"etcd_debugging_mvcc_compact_revision 0",
		"etcd_debugging_mvcc_keys_total 0",
		"# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.",
		"# TYPE etcd_disk_wal_fsync_duration_seconds histogram",
		`etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 0`,
		`etcd_disk_wal_fsync_duration_seconds_bucket{le="0.002"} 1`,
		`etcd_disk_wal_fsync_duration_seconds_bucket{le="8.192"} 1`,
		`etcd_disk_backend_commit_duration_seconds_bucket{le="8.192"} 0`,
		"metastore_memory_usage_bytes 1000",
		"metastore_memory_limit_bytes 2000",
		`metastore_validation_errors_total{reason="key_too_large"} 1`,
		`metastore_panic_total{where="grpc"} 1`,
		"go_goroutines ",
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("metrics output lacks %q", w)
		}
	}
	if strings.Contains(out, `server_version="3.7.3"`) {
		t.Errorf("old server_version series still exported")
	}
	if strings.Contains(out, `le="16.384"`) {
		t.Errorf("disk histogram has more buckets than etcd's 14")
	}
}

func TestNewPanicCounterReusesRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := NewPanicCounter(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewPanicCounter(reg)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("second NewPanicCounter on the same registry returned a different collector")
	}
	m := New(reg) // must reuse too, not panic
	if m.PanicTotal != a {
		t.Fatalf("New did not reuse the registered panic counter")
	}
}

func TestNewTwiceOnSameRegistryPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg)
	defer func() {
		if recover() == nil {
			t.Fatalf("second New on one registry did not panic")
		}
	}()
	New(reg)
}

func TestNilRegistry(t *testing.T) {
	m := New(nil)
	m.PutTotal.Inc()
	m.PanicTotal.WithLabelValues("x").Inc()
}
