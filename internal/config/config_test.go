package config

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// etcdFlags is every flag etcd v3.7.3 registers (embed.Config.AddFlags plus
// etcdmain's own and its ignored legacy flags), dumped from the real binary.
var etcdFlags = []string{
	"advertise-client-urls", "auth-token", "auth-token-ttl", "auto-compaction-mode", "auto-compaction-retention", "auto-tls",
	"backend-batch-interval", "backend-batch-limit", "backend-bbolt-freelist-type", "bcrypt-cost", "bootstrap-defrag-threshold-megabytes", "cert-file",
	"cipher-suites", "client-cert-allowed-hostname", "client-cert-auth", "client-cert-file", "client-crl-file", "client-key-file",
	"cluster-active-size", "cluster-remove-delay", "cluster-sync-interval", "compact-hash-check-time", "compaction-batch-limit", "compaction-sleep-interval",
	"config", "config-file", "corrupt-check-time", "cors", "data-dir", "discovery-cacert",
	"discovery-cert", "discovery-dial-timeout", "discovery-endpoints", "discovery-fallback", "discovery-insecure-skip-tls-verify", "discovery-insecure-transport",
	"discovery-keepalive-time", "discovery-keepalive-timeout", "discovery-key", "discovery-password", "discovery-request-timeout", "discovery-srv",
	"discovery-srv-name", "discovery-token", "discovery-user", "distributed-tracing-address", "distributed-tracing-instance-id", "distributed-tracing-sampling-rate",
	"distributed-tracing-service-name", "downgrade-check-time", "election-timeout", "enable-distributed-tracing", "enable-grpc-gateway", "enable-log-rotation",
	"enable-pprof", "feature-gates", "force", "force-new-cluster", "grpc-keepalive-interval", "grpc-keepalive-min-time",
	"grpc-keepalive-timeout", "heartbeat-interval", "host-whitelist", "initial-advertise-peer-urls", "initial-cluster", "initial-cluster-state",
	"initial-cluster-token", "initial-election-tick-advance", "key-file", "listen-client-http-urls", "listen-client-urls", "listen-metrics-urls",
	"listen-peer-urls", "log-format", "log-level", "log-outputs", "log-rotation-config-json", "logger",
	"max-concurrent-streams", "max-learners", "max-request-bytes", "max-result-buffer", "max-retry-attempts", "max-snapshots",
	"max-txn-ops", "max-wals", "memory-mlock", "metrics", "name", "peer-auto-tls",
	"peer-cert-allowed-cn", "peer-cert-allowed-hostname", "peer-cert-file", "peer-client-cert-auth", "peer-client-cert-file", "peer-client-key-file",
	"peer-crl-file", "peer-election-timeout", "peer-heartbeat-interval", "peer-key-file", "peer-skip-client-san-verification", "peer-trusted-ca-file",
	"pre-vote", "quota-backend-bytes", "raft-read-timeout", "raft-write-timeout", "retry-interval", "self-signed-cert-validity",
	"snapshot", "snapshot-catchup-entries", "snapshot-count", "socket-reuse-address", "socket-reuse-port", "strict-reconfig-check",
	"test.coverprofile", "test.outputdir", "tls-max-version", "tls-min-version", "trusted-ca-file", "unsafe-no-fsync",
	"v", "v2-deprecation", "version", "vv", "wal-dir", "warning-apply-duration",
	"warning-unary-request-duration", "watch-progress-notify-interval",
}

var ownFlags = []string{
	"storage-engine", "max-connections", "max-requests-in-flight", "memory-limit-bytes",
	"request-timeout", "connection-timeout", "shutdown-timeout", "rate-limit-per-client", "rate-limit-burst",
	"max-range-bytes-in-flight", "storage-block-cache-bytes", "storage-memtable-bytes", "storage-key-cache-bytes", "snapshot-catchup-bytes",
	"raft-gather-window",
}

func mustParse(t *testing.T, args []string, env []string) *Config {
	t.Helper()
	c, err := Parse(args, env)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", args, env, err)
	}
	return c
}

func TestEveryEtcdFlagIsAccepted(t *testing.T) {
	got := flagNames()
	want := slices.Sorted(slices.Values(append(slices.Clone(etcdFlags), ownFlags...)))
	if !slices.Equal(got, want) {
		for _, n := range want {
			if !slices.Contains(got, n) {
				t.Errorf("flag --%s is not registered", n)
			}
		}
		for _, n := range got {
			if !slices.Contains(want, n) {
				t.Errorf("flag --%s is registered but is neither etcd's nor metastore's", n)
			}
		}
	}
}

func TestImplementedTableCoversEveryFlag(t *testing.T) {
	for _, s := range specs(Default()) {
		if _, ok := implemented[s.name]; !ok {
			t.Errorf("implemented.go has no entry for --%s", s.name)
		}
	}
	names := map[string]bool{}
	for _, s := range specs(Default()) {
		names[s.name] = true
	}
	for n := range implemented {
		if !names[n] {
			t.Errorf("implemented.go lists --%s, which is not a flag", n)
		}
	}
	for n := range noOps {
		if impl, ok := implemented[n]; !ok || impl {
			t.Errorf("no-op --%s must be a flag marked not acted on in implemented", n)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, nil, nil)
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"name", c.Member.Name, "default"},
		{"data-dir", c.Member.DataDir, "default.metastore"},
		{"wal-dir", c.Member.WALDir, ""},
		{"listen-client-urls", urlsString(c.Member.ListenClientURLs), "http://127.0.0.1:2379"},
		{"advertise-client-urls", urlsString(c.Member.AdvertiseClientURLs), "http://127.0.0.1:2379"},
		{"listen-peer-urls", urlsString(c.Member.ListenPeerURLs), "http://127.0.0.1:2380"},
		{"initial-advertise-peer-urls", urlsString(c.Member.AdvertisePeerURLs), "http://127.0.0.1:2380"},
		{"listen-client-http-urls", len(c.Member.ListenClientHTTPURLs), 0},
		{"initial-cluster", c.Cluster.InitialCluster, "default=http://127.0.0.1:2380"},
		{"initial-cluster-state", c.Cluster.State, "new"},
		{"initial-cluster-token", c.Cluster.Token, "etcd-cluster"},
		{"strict-reconfig-check", c.Cluster.StrictReconfigCheck, true},
		{"max-learners", c.Cluster.MaxLearners, 1},
		{"force-new-cluster", c.Cluster.ForceNewCluster, false},
		{"snapshot-count", c.Raft.SnapshotCount, uint64(10000)},
		{"snapshot-catchup-entries", c.Raft.SnapshotCatchUpEntries, uint64(5000)},
		{"heartbeat-interval", c.Raft.HeartbeatInterval, 100 * time.Millisecond},
		{"election-timeout", c.Raft.ElectionTimeout, time.Second},
		{"election ticks", c.Raft.ElectionTicks(), 10},
		{"pre-vote", c.Raft.PreVote, true},
		{"initial-election-tick-advance", c.Raft.InitialElectionTickAdvance, true},
		{"storage-engine", c.Storage.Engine, "pebble"},
		{"max-wals", c.Storage.MaxWALs, uint(5)},
		{"unsafe-no-fsync", c.Storage.UnsafeNoFsync, false},
		{"quota-backend-bytes", c.Quota.BackendBytes, int64(0)},
		{"effective quota", c.Quota.EffectiveBackendBytes(), int64(2 << 30)},
		{"auto-compaction-mode", c.Quota.AutoCompactionMode, "periodic"},
		{"auto-compaction-retention", c.Quota.AutoCompactionRetention, "0"},
		{"auto compaction period", c.Quota.AutoCompactionPeriod, time.Duration(0)},
		{"compaction-batch-limit", c.Quota.CompactionBatchLimit, 1000},
		{"max-request-bytes", c.GRPC.MaxRequestBytes, int64(1572864)},
		{"max-txn-ops", c.GRPC.MaxTxnOps, 128},
		{"max-concurrent-streams", c.GRPC.MaxConcurrentStreams, uint32(math.MaxUint32)},
		{"grpc-keepalive-min-time", c.GRPC.KeepAliveMinTime, 5 * time.Second},
		{"grpc-keepalive-interval", c.GRPC.KeepAliveInterval, 2 * time.Hour},
		{"grpc-keepalive-timeout", c.GRPC.KeepAliveTimeout, 20 * time.Second},
		{"enable-grpc-gateway", c.GRPC.EnableGateway, true},
		{"tls-min-version", c.TLS.MinVersion, "TLS1.2"},
		{"auth-token", c.Auth.Token, "simple"},
		{"auth-token-ttl", c.Auth.TokenTTL, 300 * time.Second},
		{"bcrypt-cost", c.Auth.BcryptCost, 10},
		{"logger", c.Log.Logger, "zap"},
		{"log-level", c.Log.Level, "info"},
		{"log-format", c.Log.Format, "json"},
		{"log-outputs", c.Log.Outputs, []string{"default"}},
		{"metrics", c.Ops.Metrics, "basic"},
		{"enable-pprof", c.Ops.EnablePprof, false},
		{"listen-metrics-urls", len(c.Ops.ListenMetricsURLs), 0},
		{"watch-progress-notify-interval", c.Ops.WatchProgressNotifyInterval, 10 * time.Minute},
		{"compact-hash-check-time", c.Ops.CompactHashCheckTime, time.Minute},
		{"warning-apply-duration", c.Ops.WarningApplyDuration, 100 * time.Millisecond},
		{"feature FastLeaseKeepAlive", c.Features.Enabled(FeatureFastLeaseKeepAlive), true},
		{"feature LeaseCheckpoint", c.Features.Enabled(FeatureLeaseCheckpoint), false},
		{"max-connections", c.Limits.MaxConnections, 10000},
		{"max-requests-in-flight", c.Limits.MaxRequestsInFlight, 5000},
		{"memory-limit-bytes", c.Limits.MemoryLimitBytes, int64(2 << 30)},
		{"request-timeout", c.Limits.RequestTimeout, 30 * time.Second},
		{"connection-timeout", c.Limits.ConnectionTimeout, 10 * time.Second},
		{"shutdown-timeout", c.Limits.ShutdownTimeout, 30 * time.Second},
		{"rate-limit-per-client", c.Limits.RateLimitPerClient, 0.0},
		{"rate-limit-burst", c.Limits.RateLimitBurst, 0},
		{"max-range-bytes-in-flight", c.Limits.MaxRangeBytesInFlight, int64(0)},
		{"range budget", c.Limits.RangeBudget(), int64(256 << 20)},
		{"storage-block-cache-bytes", c.Limits.StorageBlockCacheBytes, int64(256 << 20)},
		{"storage-memtable-bytes", c.Limits.StorageMemtableBytes, int64(16 << 20)},
		{"storage-key-cache-bytes", c.Limits.StorageKeyCacheBytes, int64(64 << 20)},
		{"snapshot-catchup-bytes", c.Raft.SnapshotCatchUpBytes, int64(256 << 20)},
		{"raft-gather-window", c.Raft.GatherWindow, time.Millisecond},
		{"print version", c.PrintVersion, false},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s: got %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
	if got := c.ExplicitlySet(); len(got) != 0 {
		t.Errorf("ExplicitlySet with no flags = %v", got)
	}
	if got := c.UnimplementedSet(); len(got) != 0 {
		t.Errorf("UnimplementedSet with no flags = %v", got)
	}
}

func TestFlagsSetFields(t *testing.T) {
	c := mustParse(t, []string{
		"-name", "n1", // single dash works, as in etcd
		"--data-dir=/tmp/x",
		"--listen-client-urls", "http://127.0.0.1:3379,http://127.0.0.1:3379,http://127.0.0.1:4379",
		"--advertise-client-urls", "http://127.0.0.1:3379",
		"--heartbeat-interval", "50", "--election-timeout", "500ms",
		"--quota-backend-bytes", "8GiB",
		"--max-request-bytes", "3145728",
		"--pre-vote=false", "--enable-pprof",
		"--log-outputs", "stdout,stderr,stdout",
		"--feature-gates", "LeaseCheckpoint=true,LeaseCheckpointPersist=true",
		"--storage-engine", "memory",
		"--rate-limit-per-client", "2.5",
		"--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000",
		"--auth-token-ttl", "60",
	}, nil)
	if c.Member.Name != "n1" || c.Member.DataDir != "/tmp/x" {
		t.Errorf("name/data-dir = %q/%q", c.Member.Name, c.Member.DataDir)
	}
	if got := urlsString(c.Member.ListenClientURLs); got != "http://127.0.0.1:3379,http://127.0.0.1:4379" {
		t.Errorf("listen-client-urls = %s (want sorted, de-duplicated)", got)
	}
	if c.Raft.HeartbeatInterval != 50*time.Millisecond || c.Raft.ElectionTimeout != 500*time.Millisecond {
		t.Errorf("heartbeat/election = %v/%v", c.Raft.HeartbeatInterval, c.Raft.ElectionTimeout)
	}
	if c.Quota.BackendBytes != 8<<30 || c.GRPC.MaxRequestBytes != 3145728 {
		t.Errorf("sizes = %d/%d", c.Quota.BackendBytes, c.GRPC.MaxRequestBytes)
	}
	if c.Raft.PreVote || !c.Ops.EnablePprof {
		t.Errorf("bools: pre-vote %v enable-pprof %v", c.Raft.PreVote, c.Ops.EnablePprof)
	}
	if !slices.Equal(c.Log.Outputs, []string{"stderr", "stdout"}) {
		t.Errorf("log-outputs = %v", c.Log.Outputs)
	}
	if !c.Features.Enabled(FeatureLeaseCheckpoint) || !c.Features.Enabled(FeatureLeaseCheckpointPersist) {
		t.Errorf("feature gates = %v", c.Features.Map())
	}
	if c.Storage.Engine != EngineMemory || c.Limits.RateLimitPerClient != 2.5 || c.Limits.Burst() != 3 {
		t.Errorf("own flags: engine %q rate %v burst %d", c.Storage.Engine, c.Limits.RateLimitPerClient, c.Limits.Burst())
	}
	if c.Quota.AutoCompactionRevisions != 1000 || c.Auth.TokenTTL != time.Minute {
		t.Errorf("retention %d ttl %v", c.Quota.AutoCompactionRevisions, c.Auth.TokenTTL)
	}
	// --name alone bootstraps a one-member cluster under that name (etcd).
	if c.Cluster.InitialCluster != "n1=http://127.0.0.1:2380" {
		t.Errorf("initial-cluster = %q", c.Cluster.InitialCluster)
	}
	if c.SourceOf("name") != SourceFlag || c.SourceOf("wal-dir") != SourceDefault {
		t.Errorf("sources: name %v wal-dir %v", c.SourceOf("name"), c.SourceOf("wal-dir"))
	}
}

func TestDataDirDefaultFollowsName(t *testing.T) {
	c := mustParse(t, []string{"--name", "infra1"}, nil)
	if c.Member.DataDir != "infra1.metastore" {
		t.Errorf("data-dir = %q, want infra1.metastore", c.Member.DataDir)
	}
}

func TestRetention(t *testing.T) {
	tests := []struct {
		mode, ret string
		period    time.Duration
		revs      int64
		wantErr   bool
	}{
		{"periodic", "0", 0, 0, false},
		{"periodic", "1", time.Hour, 0, false},
		{"periodic", "30m", 30 * time.Minute, 0, false},
		{"periodic", "abc", 0, 0, true},
		{"revision", "1000", 0, 1000, false},
		{"revision", "1h", 0, 0, true},
	}
	for _, tt := range tests {
		c, err := Parse([]string{"--auto-compaction-mode", tt.mode, "--auto-compaction-retention", tt.ret}, nil)
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), "--auto-compaction-retention") {
				t.Errorf("%s/%s: err = %v, want one naming --auto-compaction-retention", tt.mode, tt.ret, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s/%s: %v", tt.mode, tt.ret, err)
			continue
		}
		if c.Quota.AutoCompactionPeriod != tt.period || c.Quota.AutoCompactionRevisions != tt.revs {
			t.Errorf("%s/%s: period %v revs %d", tt.mode, tt.ret, c.Quota.AutoCompactionPeriod, c.Quota.AutoCompactionRevisions)
		}
	}
}

func TestEnvironment(t *testing.T) {
	c := mustParse(t, []string{"--name", "n1"}, []string{
		"ETCD_DATA_DIR=/var/lib/x",
		"ETCD_STORAGE_ENGINE=memory",
		"ETCD_MAX_CONNECTIONS=7",
		"ETCD_HEARTBEAT_INTERVAL=200",
		"ETCD_ELECTION_TIMEOUT=2000",
		"ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:1",
		"ETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:1",
		"ETCD_ENABLE_PPROF=true",
		"ETCD_WAL_DIR=",      // empty: ignored
		"ETCD_NO_SUCH=thing", // unknown: warning
		"ETCD_VERSION=1",     // special: warning, ignored
		"PATH=/bin",
	})
	if c.Member.DataDir != "/var/lib/x" || c.Storage.Engine != "memory" || c.Limits.MaxConnections != 7 {
		t.Errorf("env not applied: %q %q %d", c.Member.DataDir, c.Storage.Engine, c.Limits.MaxConnections)
	}
	if c.Raft.HeartbeatInterval != 200*time.Millisecond || c.Raft.ElectionTimeout != 2*time.Second || !c.Ops.EnablePprof {
		t.Errorf("env not applied: %v %v %v", c.Raft.HeartbeatInterval, c.Raft.ElectionTimeout, c.Ops.EnablePprof)
	}
	if c.PrintVersion {
		t.Error("ETCD_VERSION must not act as --version")
	}
	if c.SourceOf("data-dir") != SourceEnv || c.SourceOf("name") != SourceFlag || c.IsSet("wal-dir") {
		t.Errorf("sources: %v %v %v", c.SourceOf("data-dir"), c.SourceOf("name"), c.IsSet("wal-dir"))
	}
	w := strings.Join(c.Warnings(), "\n")
	if !strings.Contains(w, "ETCD_NO_SUCH") || !strings.Contains(w, "ETCD_VERSION") {
		t.Errorf("warnings = %q", w)
	}
	if strings.Contains(w, "ETCD_DATA_DIR") || strings.Contains(w, "PATH") {
		t.Errorf("warnings mention used or foreign variables: %q", w)
	}
}

func TestEnvFlagConflictIsAnError(t *testing.T) {
	// etcd exits when a variable is set for a flag also given on the command
	// line, whatever the values.
	for _, env := range []string{"ETCD_NAME=x", "ETCD_NAME=y", "ETCD_NAME="} {
		_, err := Parse([]string{"--name", "y"}, []string{env})
		if err == nil || !strings.Contains(err.Error(), "ETCD_NAME") || !strings.Contains(err.Error(), "--name") {
			t.Errorf("%s with --name: err = %v", env, err)
		}
	}
}

func TestEnvBadValueNamesFlag(t *testing.T) {
	_, err := Parse(nil, []string{"ETCD_HEARTBEAT_INTERVAL=abc"})
	if err == nil || !strings.Contains(err.Error(), "ETCD_HEARTBEAT_INTERVAL") || !strings.Contains(err.Error(), "--heartbeat-interval") {
		t.Errorf("err = %v", err)
	}
}

func TestListenClientURLsNeedAdvertise(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
	}{
		{[]string{"--listen-client-urls", "http://127.0.0.1:1"}, nil},
		{nil, []string{"ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:1"}},
	} {
		c := mustParse(t, append(tc.args, "--data-dir", t.TempDir()), tc.env)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "--advertise-client-urls is required") {
			t.Errorf("%v %v: err = %v", tc.args, tc.env, err)
		}
	}
}

func TestParseErrorsNameTheFlag(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--heartbeat-interval", "abc"}, []string{`invalid value "abc" for flag --heartbeat-interval`}},
		{[]string{"--election-timeout=-5"}, []string{"--election-timeout"}},
		{[]string{"--listen-client-urls", "foo"}, []string{"--listen-client-urls", "URL scheme"}},
		{[]string{"--listen-peer-urls", "http://127.0.0.1"}, []string{"--listen-peer-urls", "host:port"}},
		{[]string{"--initial-cluster-state", "bogus"}, []string{"--initial-cluster-state", `"new"`}},
		{[]string{"--pre-vote=maybe"}, []string{"--pre-vote"}},
		{[]string{"--max-txn-ops", "-1"}, []string{"--max-txn-ops"}},
		{[]string{"--max-concurrent-streams", "4294967296"}, []string{"--max-concurrent-streams"}},
		{[]string{"--grpc-keepalive-timeout", "20"}, []string{"--grpc-keepalive-timeout", "duration"}},
		{[]string{"--feature-gates", "NoSuchGate=true"}, []string{"--feature-gates", "unrecognized feature gate"}},
		{[]string{"--feature-gates", "LeaseCheckpoint"}, []string{"--feature-gates", "missing bool value"}},
		{[]string{"--discovery-fallback", "retry"}, []string{"--discovery-fallback"}},
		{[]string{"--initial-cluster", "n1"}, []string{"--initial-cluster"}},
		{[]string{"--initial-cluster", "n1=ftp://x:1"}, []string{"--initial-cluster"}},
		{[]string{"--no-such-flag"}, []string{"flag provided but not defined: --no-such-flag"}},
		{[]string{"--name"}, []string{"flag needs an argument: --name"}},
		{[]string{"stray"}, []string{`"stray" is not a valid flag`}},
	}
	for _, tt := range tests {
		_, err := Parse(tt.args, nil)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want error", tt.args)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Parse(%q) = %q, want it to contain %q", tt.args, err, w)
			}
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) error spans lines: %q", tt.args, err)
		}
	}
}

func TestValidateErrorsNameTheFlag(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--heartbeat-interval", "300"}, "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]"},
		{[]string{"--heartbeat-interval", "0"}, "--heartbeat-interval must be >0"},
		{[]string{"--election-timeout", "60000"}, "--election-timeout[60000ms] is too long"},
		{[]string{"--storage-engine", "rocks"}, `invalid value "rocks" for flag --storage-engine`},
		{[]string{"--max-request-bytes", "0"}, "--max-request-bytes: must be >0"},
		{[]string{"--max-txn-ops", "0"}, "--max-txn-ops"},
		{[]string{"--log-level", "loud"}, `invalid value "loud" for flag --log-level`},
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--logger", "capnslog"}, "--logger=capnslog is removed in v3.5"},
		{[]string{"--log-outputs", "default,stdout"}, "--log-outputs"},
		{[]string{"--auto-compaction-mode", "daily"}, `invalid value "daily" for flag --auto-compaction-mode`},
		{[]string{"--listen-client-urls", "http://example.com:2379", "--advertise-client-urls", "http://example.com:2379"}, "--listen-client-urls: expected IP in URL for binding"},
		{[]string{"--initial-advertise-peer-urls", "http://:2380"}, "--initial-advertise-peer-urls"},
		{[]string{"--tls-min-version", "TLS1.1"}, "--tls-min-version"},
		{[]string{"--tls-min-version", "TLS1.3", "--tls-max-version", "TLS1.2"}, "min version (TLS1.3) is greater than max version (TLS1.2)"},
		{[]string{"--cipher-suites", "NOPE"}, "--cipher-suites"},
		{[]string{"--auth-token", "magic"}, `invalid value "magic" for flag --auth-token`},
		{[]string{"--discovery-token", "t"}, "both --discovery-token and --discovery-endpoints must be set"},
		{[]string{"--discovery-fallback", "proxy"}, `--discovery-fallback can't be configured as "proxy"`},
		{[]string{"--discovery-srv", "example.com", "--initial-cluster", "default=http://127.0.0.1:2380"}, "multiple discovery or bootstrap flags are set"},
		{[]string{"--feature-gates", "LeaseCheckpointPersist=true"}, "LeaseCheckpointPersist requires enabling feature gate LeaseCheckpoint"},
		{[]string{"--compact-hash-check-time", "0s"}, "--compact-hash-check-time must be >0"},
		{[]string{"--shutdown-timeout", "0s"}, "--shutdown-timeout"},
		{[]string{"--max-connections", "-1"}, "--max-connections"},
		{[]string{"--rate-limit-per-client", "-1"}, "--rate-limit-per-client"},
		{[]string{"--cert-file", "a.crt"}, "--cert-file and --key-file must be set together"},
		{[]string{"--name", "n1", "--initial-cluster", "n2=http://127.0.0.1:2380"}, `couldn't find local name "n1" in the initial cluster configuration`},
		{[]string{"--initial-cluster", "default=http://127.0.0.1:2381"}, "--initial-cluster has default=http://127.0.0.1:2381 but missing from --initial-advertise-peer-urls=http://127.0.0.1:2380"},
		{[]string{"--initial-cluster", "default=http://127.0.0.1:2380,other=http://127.0.0.1:2380"}, "duplicate url"},
		{[]string{"--initial-cluster", ""}, "initial cluster unset"},
	}
	for _, tt := range tests {
		args := append(slices.Clone(tt.args), "--data-dir", t.TempDir())
		c, err := Parse(args, nil)
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%q) = %v, want error containing %q", tt.args, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("Validate(%q) error spans lines: %q", tt.args, err)
		}
	}
}

func TestValidateAcceptsGoodConfigs(t *testing.T) {
	tests := [][]string{
		nil,
		{"--name", "n1"},
		{"--name", "n1", "--initial-advertise-peer-urls", "http://localhost:12380", "--listen-peer-urls", "http://127.0.0.1:12380"},
		{"--name", "n1", "--initial-advertise-peer-urls", "http://127.0.0.1:12380",
			"--initial-cluster", "n1=http://localhost:12380,n2=http://127.0.0.1:22380,n3=http://127.0.0.1:32380",
			"--initial-cluster-state", "existing"},
		{"--storage-engine", "memory", "--quota-backend-bytes", "-1", "--heartbeat-interval", "10", "--election-timeout", "50"},
		{"--listen-client-urls", "http://127.0.0.1:1,unix://sock", "--advertise-client-urls", "unix://sock"},
		{"--feature-gates", "AllAlpha=true"},
		{"--tls-min-version", "TLS1.3"},
		{"--auth-token", "jwt,pub-key=a,priv-key=b,sign-method=RS256"},
	}
	for _, args := range tests {
		args = append(slices.Clone(args), "--data-dir", filepath.Join(t.TempDir(), "sub", "dir"))
		c := mustParse(t, args, nil)
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%q): %v", args, err)
		}
	}
}

func TestDataDirChecks(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "a", "b", "c")
	for _, tc := range []struct {
		dataDir string
		want    string
	}{
		{file, "not a directory"},
		{filepath.Join(file, "sub"), "is not a directory"},
		{missing, ""},
		{dir, ""},
	} {
		c := mustParse(t, []string{"--data-dir", tc.dataDir}, nil)
		err := c.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("data dir %q: %v", tc.dataDir, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--data-dir") {
			t.Errorf("data dir %q: err = %v, want %q naming --data-dir", tc.dataDir, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Errorf("Validate created part of the data dir: %v", err)
	}
	// A read-only directory is caught, unless we are root (root may write).
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		c := mustParse(t, []string{"--data-dir", filepath.Join(ro, "data")}, nil)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("read-only parent: err = %v", err)
		}
	}
}

func TestValidateFillsProgrammaticConfig(t *testing.T) {
	c := Default()
	c.Member.Name = "n1"
	c.Cluster.InitialCluster = "n1=http://127.0.0.1:2380"
	c.Storage.Engine = EngineMemory
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Member.DataDir != "n1.metastore" || len(c.Cluster.InitialMembers["n1"]) != 1 {
		t.Errorf("data-dir %q, initial members %v", c.Member.DataDir, c.Cluster.InitialMembers)
	}
}

func TestInitialClusterIgnoredOnRestart(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "existing"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, []string{"--data-dir", dir, "--name", "n1", "--initial-cluster", "n2=http://127.0.0.1:2380"}, nil)
	if err := c.Validate(); err != nil {
		t.Errorf("restart with a mismatched --initial-cluster: %v (etcd ignores it)", err)
	}
}

const sampleYAML = `
name: 'infra1'
data-dir: %DIR%
listen-client-urls: http://127.0.0.1:12379,http://127.0.0.1:22379
advertise-client-urls: http://127.0.0.1:12379
listen-peer-urls: http://127.0.0.1:12380
initial-advertise-peer-urls: http://127.0.0.1:12380
initial-cluster: infra1=http://127.0.0.1:12380
initial-cluster-state: 'new'
initial-cluster-token: 'tok'
heartbeat-interval: 200
election-timeout: 2000
snapshot-count: 5000
quota-backend-bytes: 4294967296
watch-progress-notify-interval: 600000000
grpc-keepalive-timeout: "7s"
log-outputs: [stdout, stderr]
log-level: debug
enable-pprof: true
pre-vote: false
feature-gates: LeaseCheckpoint=true
auto-compaction-mode: revision
auto-compaction-retention: "5000"
storage-engine: memory
max-connections: 42
cipher-suites:
  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
peer-transport-security:
  cert-file: /p.crt
  key-file: /p.key
  client-cert-auth: true
  allowed-cn: [a, b]
client-transport-security:
  cert-file: /c.crt
  key-file: /c.key
  allowed-cn: [x]
discovery-config:
  token: ''
v2-deprecation: write-only
socket-options:
  reuse-port: true
unknown-key: 1
`

func writeYAML(t *testing.T, body string) (path, dataDir string) {
	t.Helper()
	dir := t.TempDir()
	dataDir = filepath.Join(dir, "data")
	path = filepath.Join(dir, "etcd.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(body, "%DIR%", dataDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, dataDir
}

func TestConfigFile(t *testing.T) {
	path, dataDir := writeYAML(t, sampleYAML)
	for _, tc := range []struct {
		name string
		args []string
		env  []string
	}{
		{"flag", []string{"--config-file", path, "--name", "ignored", "--max-connections", "1"}, []string{"ETCD_STORAGE_ENGINE=pebble", "ETCD_NAME=ignored"}},
		{"env", []string{"--log-level", "error"}, []string{"ETCD_CONFIG_FILE=" + path, "ETCD_MAX_CONNECTIONS=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, tc.args, tc.env)
			checks := []struct {
				what      string
				got, want any
			}{
				{"name", c.Member.Name, "infra1"},
				{"data-dir", c.Member.DataDir, dataDir},
				{"listen-client-urls", urlsString(c.Member.ListenClientURLs), "http://127.0.0.1:12379,http://127.0.0.1:22379"},
				{"heartbeat", c.Raft.HeartbeatInterval, 200 * time.Millisecond},
				{"election", c.Raft.ElectionTimeout, 2 * time.Second},
				{"snapshot-count", c.Raft.SnapshotCount, uint64(5000)},
				{"quota", c.Quota.BackendBytes, int64(4 << 30)},
				{"watch progress (ns)", c.Ops.WatchProgressNotifyInterval, 600 * time.Millisecond},
				{"keepalive (string)", c.GRPC.KeepAliveTimeout, 7 * time.Second},
				{"log-outputs", c.Log.Outputs, []string{"stderr", "stdout"}},
				{"log-level (flag ignored)", c.Log.Level, "debug"},
				{"pprof", c.Ops.EnablePprof, true},
				{"pre-vote", c.Raft.PreVote, false},
				{"gate", c.Features.Enabled(FeatureLeaseCheckpoint), true},
				{"revisions", c.Quota.AutoCompactionRevisions, int64(5000)},
				{"engine (env ignored)", c.Storage.Engine, "memory"},
				{"max-connections (flag/env ignored)", c.Limits.MaxConnections, 42},
				{"cipher-suites", c.TLS.CipherSuites, []string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}},
				{"peer cert", c.PeerTLS.CertFile, "/p.crt"},
				{"peer client-cert-auth", c.PeerTLS.ClientCertAuth, true},
				{"peer allowed-cn", c.PeerTLS.AllowedCNs, []string{"a", "b"}},
				{"client cert", c.ClientTLS.CertFile, "/c.crt"},
				{"client allowed-cn", c.ClientTLS.AllowedCNs, []string{"x"}},
				{"socket reuse-port", c.Member.SocketReusePort, true},
				{"config file", c.ConfigFile, path},
				{"source", c.SourceOf("name"), SourceFile},
				{"peer source", c.SourceOf("peer-cert-file"), SourceFile},
			}
			for _, ch := range checks {
				if !reflect.DeepEqual(ch.got, ch.want) {
					t.Errorf("%s: got %#v, want %#v", ch.what, ch.got, ch.want)
				}
			}
			if !strings.Contains(strings.Join(c.Warnings(), "\n"), "unknown-key") {
				t.Errorf("no warning for unknown-key: %q", c.Warnings())
			}
			if un := c.UnimplementedSet(); len(un) != 0 {
				t.Errorf("UnimplementedSet() = %v, want none: every flag in the file is acted on", un)
			}
			if c.Cluster.V2Deprecation != V2DeprecationDefault || c.Cluster.V2DeprecationGiven != "write-only" {
				t.Errorf("v2-deprecation: effective %q given %q", c.Cluster.V2Deprecation, c.Cluster.V2DeprecationGiven)
			}
		})
	}
}

func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct {
		body string
		want string
	}{
		{"heartbeat-interval: abc\n", "heartbeat-interval"},
		{"listen-client-urls: 'ftp://x:1'\n", "listen-client-urls"},
		{"storage-engine: [a, b]\n", "storage-engine"},
		{"peer-transport-security: 3\n", "peer-transport-security"},
		{"name: [\n", "parse --config-file"},
		{"- a\n- b\n", "parse --config-file"},
	} {
		path, _ := writeYAML(t, tc.body)
		_, err := Parse([]string{"--config-file", path}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.body, err, tc.want)
		}
	}
	if _, err := Parse([]string{"--config-file", "/no/such/file.yaml"}, nil); err == nil || !strings.Contains(err.Error(), "--config-file") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestUnimplementedSet(t *testing.T) {
	c := mustParse(t, []string{"--v2-deprecation", "write-only", "--name", "n1", "--metrics", "extensive", "--snapshot", "--max-wals", "2"},
		[]string{"ETCD_BCRYPT_COST=12", "ETCD_STORAGE_ENGINE=memory"})
	if got := c.UnimplementedSet(); len(got) != 0 {
		t.Errorf("UnimplementedSet() = %v, want none", got)
	}
	if n := c.NoOpSet(); len(n) != 1 || n[0].Flag != "max-wals" || !strings.Contains(n[0].Reason, "WAL files") {
		t.Errorf("NoOpSet() = %v, want max-wals with its reason", n)
	}
	if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, "--snapshot") {
		t.Errorf("ignored legacy flag not warned about: %q", w)
	}
}

func TestDeprecatedFlagsWarn(t *testing.T) {
	c := mustParse(t, []string{"--max-snapshots", "3", "--v2-deprecation", "gone"}, nil)
	w := strings.Join(c.Warnings(), "\n")
	if !strings.Contains(w, "--max-snapshots is deprecated") || !strings.Contains(w, "--v2-deprecation is deprecated") {
		t.Errorf("warnings = %q", w)
	}
}

func TestVersionAndHelp(t *testing.T) {
	c := mustParse(t, []string{"--version", "--heartbeat-interval", "1"}, []string{"ETCD_NAME=x"})
	if !c.PrintVersion {
		t.Error("--version did not set PrintVersion")
	}
	for _, h := range []string{"-h", "--help", "-help"} {
		if _, err := Parse([]string{h}, nil); err != ErrHelp {
			t.Errorf("Parse(%s) err = %v, want ErrHelp", h, err)
		}
	}
	u := Usage()
	for _, s := range specs(Default()) {
		if !strings.Contains(u, "  --"+s.name+" '") {
			t.Errorf("Usage() does not list --%s", s.name)
		}
	}
	for _, want := range []string{
		"--data-dir '${name}.metastore'",
		"--listen-client-urls 'http://127.0.0.1:2379'",
		"--heartbeat-interval '100'",
		"--election-timeout '1000'",
		"--max-request-bytes '1572864'",
		"--grpc-keepalive-interval '2h0m0s'",
		"--initial-cluster 'default=http://127.0.0.1:2380'",
		"--storage-engine 'pebble'",
		"--memory-limit-bytes '2147483648'",
		"\nMember:\n", "\nClustering:\n", "\nSecurity:\n", "\nLogging:\n",
		"LeaseCheckpoint=true|false (ALPHA - default=false)",
	} {
		if !strings.Contains(u, want) {
			t.Errorf("Usage() lacks %q", want)
		}
	}
}

func TestFeatureGatesAllAlpha(t *testing.T) {
	c := mustParse(t, []string{"--feature-gates", "AllAlpha=true,CompactHashCheck=false"}, nil)
	if !c.Features.Enabled(FeatureInitialCorruptCheck) || c.Features.Enabled(FeatureCompactHashCheck) || !c.Features.Enabled(FeatureFastLeaseKeepAlive) {
		t.Errorf("gates = %v", c.Features.Map())
	}
}

func TestSizeValues(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1572864": 1572864, "2GiB": 2 << 30, "512MiB": 512 << 20, "1GB": 1e9, "10k": 10 << 10} {
		c := mustParse(t, []string{"--memory-limit-bytes", in}, nil)
		if c.Limits.MemoryLimitBytes != want {
			t.Errorf("%s = %d, want %d", in, c.Limits.MemoryLimitBytes, want)
		}
	}
	for _, bad := range []string{"-1", "abc", "1.5GiB", "99999999999GiB"} {
		if _, err := Parse([]string{"--memory-limit-bytes", bad}, nil); err == nil || !strings.Contains(err.Error(), "--memory-limit-bytes") {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
}

// TestRaftGatherWindow: metastore's --raft-gather-window takes a duration
// from the flag or its ETCD_ variable, 0 turns gathering off, and a
// negative or too long window is refused in one line.
func TestRaftGatherWindow(t *testing.T) {
	if c := mustParse(t, []string{"--raft-gather-window", "500us"}, nil); c.Raft.GatherWindow != 500*time.Microsecond {
		t.Errorf("--raft-gather-window 500us: %v", c.Raft.GatherWindow)
	}
	if c := mustParse(t, nil, []string{"ETCD_RAFT_GATHER_WINDOW=0"}); c.Raft.GatherWindow != 0 {
		t.Errorf("ETCD_RAFT_GATHER_WINDOW=0: %v", c.Raft.GatherWindow)
	}
	for _, arg := range []string{"-1ms", "101ms", "soon"} {
		c, err := Parse([]string{"--raft-gather-window", arg, "--data-dir", t.TempDir()}, nil)
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), "--raft-gather-window") || strings.Contains(err.Error(), "\n") {
			t.Errorf("--raft-gather-window %s: %v, want one line naming the flag", arg, err)
		}
	}
}
