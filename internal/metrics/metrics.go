package metrics

import (
	"fmt"
	"net/http"
	goruntime "runtime"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources are the live-state callbacks behind the GaugeFuncs. Any field may
// be nil; its gauge then reports 0. The server sets them once its
// components exist (SetSources), which may be after New.
type Sources struct {
	DBTotalSize      func() float64 // etcd_mvcc_db_total_size_in_bytes
	DBTotalSizeInUse func() float64 // etcd_mvcc_db_total_size_in_use_in_bytes
	CurrentRevision  func() float64 // etcd_debugging_mvcc_current_revision
	CompactRevision  func() float64 // etcd_debugging_mvcc_compact_revision
	KeysTotal        func() float64 // etcd_debugging_mvcc_keys_total
	WatchStreams     func() float64 // etcd_debugging_mvcc_watch_stream_total
	Watchers         func() float64 // etcd_debugging_mvcc_watcher_total
	SlowWatchers     func() float64 // etcd_debugging_mvcc_slow_watcher_total
	MemoryUsage      func() float64 // metastore_memory_usage_bytes
	MemoryLimit      func() float64 // metastore_memory_limit_bytes
}

// Metrics holds the server-level collectors. Names, types, help strings and
// buckets follow go.etcd.io/etcd/server/v3@v3.7.3; note that etcd declares
// proposals_committed_total, proposals_applied_total and
// wal_write_bytes_total as gauges (Set from raft state), and so do we.
type Metrics struct {
	// etcd_server_*
	HasLeader               prometheus.Gauge
	IsLeader                prometheus.Gauge
	IsLearner               prometheus.Gauge
	LeaderChanges           prometheus.Counter
	HeartbeatSendFailures   prometheus.Counter
	SnapshotApplyInProgress prometheus.Gauge
	ProposalsCommitted      prometheus.Gauge
	ProposalsApplied        prometheus.Gauge
	ProposalsPending        prometheus.Gauge
	ProposalsFailed         prometheus.Counter
	SlowApplies             prometheus.Counter
	SlowReadIndexes         prometheus.Counter
	ReadIndexesFailed       prometheus.Counter
	LeaseExpired            prometheus.Counter // etcd_debugging_server_lease_expired_total
	QuotaBackendBytes       prometheus.Gauge
	serverVersion           *prometheus.GaugeVec
	goVersion               *prometheus.GaugeVec
	serverID                *prometheus.GaugeVec
	clusterVersion          *prometheus.GaugeVec

	// etcd_mvcc_* and etcd_debugging_mvcc_*
	RangeTotal          prometheus.Counter
	PutTotal            prometheus.Counter
	DeleteTotal         prometheus.Counter
	TxnTotal            prometheus.Counter
	EventsTotal         prometheus.Counter // etcd_debugging_mvcc_events_total
	CompactionKeysTotal prometheus.Counter // etcd_debugging_mvcc_db_compaction_keys_total
	HashDuration        prometheus.Histogram
	HashRevDuration     prometheus.Histogram

	// etcd_disk_*
	WALFsyncDuration        prometheus.Histogram
	WALWriteDuration        prometheus.Histogram
	WALWriteBytes           prometheus.Gauge
	BackendCommitDuration   prometheus.Histogram
	BackendSnapshotDuration prometheus.Histogram

	// metastore_*
	ValidationErrors *prometheus.CounterVec // metastore_validation_errors_total{reason}
	PanicTotal       *prometheus.CounterVec // metastore_panic_total{where}

	sources atomic.Pointer[Sources]
}

// etcd's latency buckets: 1 ms doubling to 8.192 s.
var diskBuckets = prometheus.ExponentialBuckets(0.001, 2, 14)

// New creates the collectors and registers them, together with the Go runtime
// and process collectors etcd also exposes (go_*, process_*), on reg. A nil
// reg registers nothing. Like prometheus.MustRegister it panics on a
// registration conflict: that is a wiring bug, not a runtime condition.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{}
	m.sources.Store(&Sources{})
	g := func(ns, sub, name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	c := func(ns, sub, name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	h := func(ns, sub, name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help, Buckets: buckets})
	}
	gv := func(ns, sub, name, help, label string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, []string{label})
	}
	gf := func(ns, sub, name, help string, pick func(*Sources) func() float64) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help},
			func() float64 {
				if f := pick(m.sources.Load()); f != nil {
					return f()
				}
				return 0
			})
	}

	m.HasLeader = g("etcd", "server", "has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.")
	m.IsLeader = g("etcd", "server", "is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.")
	m.IsLearner = g("etcd", "server", "is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.")
	m.LeaderChanges = c("etcd", "server", "leader_changes_seen_total", "The number of leader changes seen.")
	m.HeartbeatSendFailures = c("etcd", "server", "heartbeat_send_failures_total", "The total number of leader heartbeat send failures (likely overloaded from slow disk).")
	m.SnapshotApplyInProgress = g("etcd", "server", "snapshot_apply_in_progress_total", "1 if the server is applying the incoming snapshot. 0 if none.")
	m.ProposalsCommitted = g("etcd", "server", "proposals_committed_total", "The total number of consensus proposals committed.")
	m.ProposalsApplied = g("etcd", "server", "proposals_applied_total", "The total number of consensus proposals applied.")
	m.ProposalsPending = g("etcd", "server", "proposals_pending", "The current number of pending proposals to commit.")
	m.ProposalsFailed = c("etcd", "server", "proposals_failed_total", "The total number of failed proposals seen.")
	m.SlowApplies = c("etcd", "server", "slow_apply_total", "The total number of slow apply requests (likely overloaded from slow disk).")
	m.SlowReadIndexes = c("etcd", "server", "slow_read_indexes_total", "The total number of pending read indexes not in sync with leader's or timed out read index requests.")
	m.ReadIndexesFailed = c("etcd", "server", "read_indexes_failed_total", "The total number of failed read indexes seen.")
	m.LeaseExpired = c("etcd_debugging", "server", "lease_expired_total", "The total number of expired leases.")
	m.QuotaBackendBytes = g("etcd", "server", "quota_backend_bytes", "Current backend storage quota size in bytes.")
	m.serverVersion = gv("etcd", "server", "version", "Which version is running. 1 for 'server_version' label with current version.", "server_version")
	m.goVersion = gv("etcd", "server", "go_version", "Which Go version server is running with. 1 for 'server_go_version' label with current version.", "server_go_version")
	m.serverID = gv("etcd", "server", "id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", "server_id")
	m.clusterVersion = gv("etcd", "cluster", "version", "Which version is running. 1 for 'cluster_version' label with current cluster version", "cluster_version")

	m.RangeTotal = c("etcd", "mvcc", "range_total", "Total number of ranges seen by this member.")
	m.PutTotal = c("etcd", "mvcc", "put_total", "Total number of puts seen by this member.")
	m.DeleteTotal = c("etcd", "mvcc", "delete_total", "Total number of deletes seen by this member.")
	m.TxnTotal = c("etcd", "mvcc", "txn_total", "Total number of txns seen by this member.")
	m.EventsTotal = c("etcd_debugging", "mvcc", "events_total", "Total number of events sent by this member.")
	m.CompactionKeysTotal = c("etcd_debugging", "mvcc", "db_compaction_keys_total", "Total number of db keys compacted.")
	m.HashDuration = h("etcd", "mvcc", "hash_duration_seconds", "The latency distribution of storage hash operation.", prometheus.ExponentialBuckets(.01, 2, 15))
	m.HashRevDuration = h("etcd", "mvcc", "hash_rev_duration_seconds", "The latency distribution of storage hash by revision operation.", prometheus.ExponentialBuckets(.01, 2, 15))

	m.WALFsyncDuration = h("etcd", "disk", "wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.", diskBuckets)
	m.WALWriteDuration = h("etcd", "disk", "wal_write_duration_seconds", "The latency distributions of write called by WAL.", diskBuckets)
	m.WALWriteBytes = g("etcd", "disk", "wal_write_bytes_total", "Total number of bytes written in WAL.")
	m.BackendCommitDuration = h("etcd", "disk", "backend_commit_duration_seconds", "The latency distributions of commit called by backend.", diskBuckets)
	m.BackendSnapshotDuration = h("etcd", "disk", "backend_snapshot_duration_seconds", "The latency distribution of backend snapshots.", prometheus.ExponentialBuckets(.01, 2, 17))

	m.ValidationErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "metastore_validation_errors_total",
		Help: "The total number of requests or records rejected by data validation, by reason.",
	}, []string{"reason"})

	liveGauges := []prometheus.Collector{
		gf("etcd", "mvcc", "db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.", func(s *Sources) func() float64 { return s.DBTotalSize }),
		gf("etcd", "mvcc", "db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.", func(s *Sources) func() float64 { return s.DBTotalSizeInUse }),
		gf("etcd_debugging", "mvcc", "current_revision", "The current revision of store.", func(s *Sources) func() float64 { return s.CurrentRevision }),
		gf("etcd_debugging", "mvcc", "compact_revision", "The revision of the last compaction in store.", func(s *Sources) func() float64 { return s.CompactRevision }),
		gf("etcd_debugging", "mvcc", "keys_total", "Total number of keys.", func(s *Sources) func() float64 { return s.KeysTotal }),
		gf("etcd_debugging", "mvcc", "watch_stream_total", "Total number of watch streams.", func(s *Sources) func() float64 { return s.WatchStreams }),
		gf("etcd_debugging", "mvcc", "watcher_total", "Total number of watchers.", func(s *Sources) func() float64 { return s.Watchers }),
		gf("etcd_debugging", "mvcc", "slow_watcher_total", "Total number of unsynced slow watchers.", func(s *Sources) func() float64 { return s.SlowWatchers }),
		gf("metastore", "", "memory_usage_bytes", "Heap memory in use by live objects, in bytes, as last sampled by the memory watermark.", func(s *Sources) func() float64 { return s.MemoryUsage }),
		gf("metastore", "", "memory_limit_bytes", "The memory watermark above which write requests are rejected, in bytes (0: no limit).", func(s *Sources) func() float64 { return s.MemoryLimit }),
	}

	m.goVersion.WithLabelValues(goruntime.Version()).Set(1)

	all := []prometheus.Collector{
		m.HasLeader, m.IsLeader, m.IsLearner, m.LeaderChanges, m.HeartbeatSendFailures, m.SnapshotApplyInProgress,
		m.ProposalsCommitted, m.ProposalsApplied, m.ProposalsPending, m.ProposalsFailed, m.SlowApplies,
		m.SlowReadIndexes, m.ReadIndexesFailed, m.LeaseExpired, m.QuotaBackendBytes,
		m.serverVersion, m.goVersion, m.serverID, m.clusterVersion,
		m.RangeTotal, m.PutTotal, m.DeleteTotal, m.TxnTotal, m.EventsTotal, m.CompactionKeysTotal,
		m.HashDuration, m.HashRevDuration,
		m.WALFsyncDuration, m.WALWriteDuration, m.WALWriteBytes, m.BackendCommitDuration, m.BackendSnapshotDuration,
		m.ValidationErrors,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	all = append(all, liveGauges...)
	if err := RegisterAll(reg, all...); err != nil {
		panic(fmt.Errorf("metrics.New: %w", err))
	}
	pc, err := NewPanicCounter(reg)
	if err != nil {
		panic(fmt.Errorf("metrics.New: %w", err))
	}
	m.PanicTotal = pc
	return m
}

// SetSources installs the live-state callbacks; safe to call at any time,
// concurrently with scrapes.
func (m *Metrics) SetSources(s Sources) { m.sources.Store(&s) }

// SetVersion sets etcd_server_version{server_version=v} to 1 (the only series).
func (m *Metrics) SetVersion(v string) { setInfo(m.serverVersion, v) }

// SetClusterVersion sets etcd_cluster_version{cluster_version=v} to 1.
func (m *Metrics) SetClusterVersion(v string) { setInfo(m.clusterVersion, v) }

// SetServerID sets etcd_server_id{server_id} to 1, with the member ID in
// lower-case hexadecimal without leading zeros, as etcd's types.ID prints it.
func (m *Metrics) SetServerID(id uint64) { setInfo(m.serverID, strconv.FormatUint(id, 16)) }

func setInfo(v *prometheus.GaugeVec, label string) {
	v.Reset()
	v.WithLabelValues(label).Set(1)
}

// Handler serves the Prometheus text exposition of g at /metrics.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}
