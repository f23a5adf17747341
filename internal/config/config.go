package config

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/metastore/metastore/internal/logutil"
)

// Values with a meaning of their own.
const (
	DefaultName = "default"

	ClusterStateNew      = "new"
	ClusterStateExisting = "existing"

	EnginePebble = "pebble"
	EngineMemory = "memory"

	CompactionModePeriodic = "periodic"
	CompactionModeRevision = "revision"

	// DefaultQuotaBackendBytes is what a --quota-backend-bytes of 0 means.
	DefaultQuotaBackendBytes = int64(2 << 30)

	// DataDirSuffix makes the default data dir "${name}.metastore"
	// (etcd uses "${name}.etcd"; a different name keeps a metastore from
	// ever opening an etcd data dir by accident).
	DataDirSuffix = ".metastore"

	defaultListenClientURL = "http://127.0.0.1:2379"
	defaultListenPeerURL   = "http://127.0.0.1:2380"

	// maxElection is etcd's upper bound on --election-timeout.
	maxElection = 50 * time.Second
)

// Config holds every setting of a metastore member. Parse fills it from
// flags, environment and config file; Default returns the defaults.
type Config struct {
	Member    MemberConfig
	Cluster   ClusterConfig
	Discovery DiscoveryConfig
	Raft      RaftConfig
	Storage   StorageConfig
	Quota     QuotaConfig
	GRPC      GRPCConfig
	ClientTLS TLSConfig // client-facing listeners (--cert-file, ...)
	PeerTLS   TLSConfig // peer listeners and dialing (--peer-cert-file, ...)
	TLS       TLSCommonConfig
	Auth      AuthConfig
	Log       LogConfig
	Ops       OpsConfig
	Features  FeatureGates
	Limits    LimitsConfig

	// Testing holds fault-injection hooks for metastore's own end-to-end
	// tests. They are set only from METASTORE_TESTING_* environment
	// variables, never by a flag, so no production configuration enables
	// them by accident.
	Testing TestingConfig

	// PrintVersion is --version: print the version and exit.
	PrintVersion bool
	// ConfigFile is --config-file (or ETCD_CONFIG_FILE) when one was used.
	ConfigFile string

	// set records which flags the user gave explicitly, and how.
	set map[string]Source
	// warnings are non-fatal findings of Parse and Validate, one message
	// each, for the server to log once its logger exists.
	warnings []string
}

// TestingConfig holds test-only fault injection.
type TestingConfig struct {
	// PanicKey makes a Put of exactly this key panic inside its handler
	// (METASTORE_TESTING_PANIC_KEY), to prove panic recovery end to end.
	PanicKey string
	// DNSServer sends DNS SRV discovery's lookups to this host:port
	// instead of the system resolver (METASTORE_TESTING_DNS_SERVER), so a
	// test can answer them from a responder on loopback.
	DNSServer string
	// RetainRaftLog keeps a copy of every Raft log entry that compaction
	// trims (METASTORE_TEST_RETAIN_RAFT_LOG=1; raftlog.Storage.RetainTrimmed),
	// so the robustness suite can replay every persisted request.
	RetainRaftLog bool
}

// MemberConfig identifies this member and where it listens.
type MemberConfig struct {
	Name    string // --name
	DataDir string // --data-dir; "${name}.metastore" when not given
	WALDir  string // --wal-dir

	ListenClientURLs     []url.URL // --listen-client-urls
	ListenClientHTTPURLs []url.URL // --listen-client-http-urls
	AdvertiseClientURLs  []url.URL // --advertise-client-urls
	ListenPeerURLs       []url.URL // --listen-peer-urls
	AdvertisePeerURLs    []url.URL // --initial-advertise-peer-urls

	SocketReusePort    bool // --socket-reuse-port
	SocketReuseAddress bool // --socket-reuse-address
}

// ClusterConfig is how the cluster is bootstrapped and reconfigured.
type ClusterConfig struct {
	// InitialCluster is --initial-cluster as given ("n1=http://a:2380,...").
	InitialCluster string
	// InitialMembers is InitialCluster parsed: name → peer URLs, sorted.
	InitialMembers map[string][]url.URL
	State          string // --initial-cluster-state: new | existing
	Token          string // --initial-cluster-token

	ForceNewCluster     bool // --force-new-cluster
	StrictReconfigCheck bool // --strict-reconfig-check
	MaxLearners         int  // --max-learners
	// V2Deprecation is the effective v2store deprecation phase: always
	// V2DeprecationDefault, which etcd v3.7.3 enforces whatever
	// --v2-deprecation says (the flag is deprecated). metastore has no
	// v2store, so the phase is only reported (the start-up log), as etcd
	// reports it.
	V2Deprecation string
	// V2DeprecationGiven is --v2-deprecation as given: the sorted, comma
	// joined phases etcd's flag accepts ("" when unset).
	V2DeprecationGiven string
}

// V2DeprecationDefault is the v2store deprecation phase etcd v3.7.3
// enforces.
const V2DeprecationDefault = "write-only"

// v2DeprecationValues are the phases etcd v3.7.3's --v2-deprecation
// accepts: "not-yet" is no longer one of them.
var v2DeprecationValues = []string{"write-only", "write-only-skip-check", "write-only-drop-data", "gone"}

// v2DeprecationWarning is etcd's warning when --v2-deprecation is set.
const v2DeprecationWarning = "--v2-deprecation is deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input."

// DiscoveryConfig is v3 discovery (--discovery-*).
type DiscoveryConfig struct {
	Endpoints             []string      // --discovery-endpoints
	Token                 string        // --discovery-token
	DialTimeout           time.Duration // --discovery-dial-timeout
	RequestTimeout        time.Duration // --discovery-request-timeout
	KeepAliveTime         time.Duration // --discovery-keepalive-time
	KeepAliveTimeout      time.Duration // --discovery-keepalive-timeout
	InsecureTransport     bool          // --discovery-insecure-transport
	InsecureSkipTLSVerify bool          // --discovery-insecure-skip-tls-verify
	CertFile              string        // --discovery-cert
	KeyFile               string        // --discovery-key
	CAFile                string        // --discovery-cacert
	User                  string        // --discovery-user
	Password              string        // --discovery-password
	SRV                   string        // --discovery-srv
	SRVName               string        // --discovery-srv-name
	Fallback              string        // --discovery-fallback: exit
}

// RaftConfig tunes consensus.
type RaftConfig struct {
	HeartbeatInterval          time.Duration // --heartbeat-interval (ms)
	ElectionTimeout            time.Duration // --election-timeout (ms)
	InitialElectionTickAdvance bool          // --initial-election-tick-advance
	PreVote                    bool          // --pre-vote
	SnapshotCount              uint64        // --snapshot-count
	SnapshotCatchUpEntries     uint64        // --snapshot-catchup-entries
	// SnapshotCatchUpBytes also bounds the log by its entries' size
	// (metastore's own; 0 = off): see apply.Config.CatchupBytes.
	SnapshotCatchUpBytes int64         // --snapshot-catchup-bytes
	PeerReadTimeout      time.Duration // --raft-read-timeout
	PeerWriteTimeout     time.Duration // --raft-write-timeout
	// GatherWindow is how long a busy leader may keep taking proposals
	// after a large synced save before it saves again (metastore's own; 0 =
	// off): see raftnode.Gather.
	GatherWindow time.Duration // --raft-gather-window
}

// ElectionTicks is the election timeout in heartbeat ticks, as raft wants it.
func (r RaftConfig) ElectionTicks() int {
	if r.HeartbeatInterval <= 0 {
		return 0
	}
	return int(r.ElectionTimeout / r.HeartbeatInterval)
}

// StorageConfig is the storage engine and etcd's backend knobs.
type StorageConfig struct {
	Engine        string // --storage-engine: pebble | memory (metastore's own)
	UnsafeNoFsync bool   // --unsafe-no-fsync
	MemoryMlock   bool   // --memory-mlock

	MaxWALs      uint // --max-wals
	MaxSnapshots uint // --max-snapshots (deprecated in etcd)

	// bbolt-specific in etcd; accepted for compatibility.
	BackendBatchInterval              time.Duration // --backend-batch-interval
	BackendBatchLimit                 int           // --backend-batch-limit
	BackendFreelistType               string        // --backend-bbolt-freelist-type (no-op)
	BootstrapDefragThresholdMegabytes uint          // --bootstrap-defrag-threshold-megabytes
}

// QuotaConfig is the space quota and compaction.
type QuotaConfig struct {
	// BackendBytes is --quota-backend-bytes: 0 means DefaultQuotaBackendBytes,
	// negative means no quota (as in etcd). See EffectiveBackendBytes.
	BackendBytes int64

	AutoCompactionMode      string // --auto-compaction-mode: periodic | revision
	AutoCompactionRetention string // --auto-compaction-retention as given
	// AutoCompactionPeriod is the retention in periodic mode (0 = off).
	// A bare number means hours, as in etcd.
	AutoCompactionPeriod time.Duration
	// AutoCompactionRevisions is the retention in revision mode (0 = off).
	AutoCompactionRevisions int64

	CompactionBatchLimit    int           // --compaction-batch-limit
	CompactionSleepInterval time.Duration // --compaction-sleep-interval
}

// EffectiveBackendBytes is the quota in force: 0 → 2 GiB, <0 → none (0).
func (q QuotaConfig) EffectiveBackendBytes() int64 {
	switch {
	case q.BackendBytes == 0:
		return DefaultQuotaBackendBytes
	case q.BackendBytes < 0:
		return 0
	}
	return q.BackendBytes
}

// GRPCConfig is the client API's transport and request limits.
type GRPCConfig struct {
	MaxRequestBytes      int64         // --max-request-bytes
	MaxTxnOps            int           // --max-txn-ops
	MaxConcurrentStreams uint32        // --max-concurrent-streams
	KeepAliveMinTime     time.Duration // --grpc-keepalive-min-time
	KeepAliveInterval    time.Duration // --grpc-keepalive-interval
	KeepAliveTimeout     time.Duration // --grpc-keepalive-timeout
	EnableGateway        bool          // --enable-grpc-gateway
	CORS                 []string      // --cors ("*" = all)
	HostWhitelist        []string      // --host-whitelist ("*" = all)
}

// TLSConfig is one side's TLS material (client or peer).
type TLSConfig struct {
	CertFile            string   // --cert-file / --peer-cert-file
	KeyFile             string   // --key-file / --peer-key-file
	ClientCertFile      string   // --client-cert-file / --peer-client-cert-file
	ClientKeyFile       string   // --client-key-file / --peer-client-key-file
	TrustedCAFile       string   // --trusted-ca-file / --peer-trusted-ca-file
	ClientCertAuth      bool     // --client-cert-auth / --peer-client-cert-auth
	CRLFile             string   // --client-crl-file / --peer-crl-file
	AutoTLS             bool     // --auto-tls / --peer-auto-tls
	AllowedCNs          []string // peer: --peer-cert-allowed-cn
	AllowedHostnames    []string // --client-cert-allowed-hostname / --peer-cert-allowed-hostname
	SkipClientSANVerify bool     // peer: --peer-skip-client-san-verification
}

// Enabled reports whether this side serves TLS.
func (t TLSConfig) Enabled() bool {
	return t.CertFile != "" || t.KeyFile != "" || t.AutoTLS
}

// TLSCommonConfig is TLS settings shared by both sides.
type TLSCommonConfig struct {
	CipherSuites           []string // --cipher-suites
	MinVersion             string   // --tls-min-version: TLS1.2 | TLS1.3
	MaxVersion             string   // --tls-max-version: "" | TLS1.2 | TLS1.3
	SelfSignedCertValidity uint     // --self-signed-cert-validity (years)
}

// AuthConfig is authentication.
type AuthConfig struct {
	// Token is --auth-token: "simple" or "jwt,pub-key=...,priv-key=...,
	// sign-method=...,ttl=...".
	Token      string
	TokenTTL   time.Duration // --auth-token-ttl (seconds on the command line)
	BcryptCost int           // --bcrypt-cost
}

// LogConfig is logging.
type LogConfig struct {
	Logger             string   // --logger: zap
	Level              string   // --log-level
	Format             string   // --log-format: json | console
	Outputs            []string // --log-outputs
	EnableRotation     bool     // --enable-log-rotation
	RotationConfigJSON string   // --log-rotation-config-json
}

// OpsConfig is monitoring, profiling and periodic background checks.
type OpsConfig struct {
	Metrics                     string        // --metrics: basic | extensive
	ListenMetricsURLs           []url.URL     // --listen-metrics-urls
	EnablePprof                 bool          // --enable-pprof
	WatchProgressNotifyInterval time.Duration // --watch-progress-notify-interval
	CorruptCheckTime            time.Duration // --corrupt-check-time
	CompactHashCheckTime        time.Duration // --compact-hash-check-time
	WarningApplyDuration        time.Duration // --warning-apply-duration
	WarningUnaryRequestDuration time.Duration // --warning-unary-request-duration
	DowngradeCheckTime          time.Duration // --downgrade-check-time
	Tracing                     TracingConfig
}

// TracingConfig is OpenTelemetry tracing (--*distributed-tracing*).
type TracingConfig struct {
	Enabled                bool   // --enable-distributed-tracing
	Address                string // --distributed-tracing-address
	ServiceName            string // --distributed-tracing-service-name
	InstanceID             string // --distributed-tracing-instance-id
	SamplingRatePerMillion int    // --distributed-tracing-sampling-rate
}

// LimitsConfig is metastore's reliability layer (its own flags).
type LimitsConfig struct {
	MaxConnections      int           // --max-connections (0 = unlimited)
	MaxRequestsInFlight int           // --max-requests-in-flight (0 = unlimited)
	MemoryLimitBytes    int64         // --memory-limit-bytes (0 = unlimited); above it writes get ResourceExhausted
	RequestTimeout      time.Duration // --request-timeout
	ConnectionTimeout   time.Duration // --connection-timeout
	ShutdownTimeout     time.Duration // --shutdown-timeout
	RateLimitPerClient  float64       // --rate-limit-per-client, requests/s per client IP (0 = off)
	RateLimitBurst      int           // --rate-limit-burst (0 = ceil(rate), at least 1)

	// Memory sizing (issue 11).
	MaxRangeBytesInFlight  int64 // --max-range-bytes-in-flight (0 = derived, see RangeBudget)
	StorageBlockCacheBytes int64 // --storage-block-cache-bytes (Pebble's block cache)
	StorageMemtableBytes   int64 // --storage-memtable-bytes (Pebble's memtable size)
	// StorageKeyCacheBytes bounds the cache of keys' newest versions that
	// writes and point reads consult before the engine (0 = off; ADR 15).
	StorageKeyCacheBytes int64 // --storage-key-cache-bytes
}

// Default memory sizes, suited to a 2-8 GiB member.
const (
	DefaultStorageBlockCacheBytes = 256 << 20
	DefaultStorageMemtableBytes   = 16 << 20
	DefaultStorageKeyCacheBytes   = 64 << 20
	// DefaultSnapshotCatchUpBytes: the log holds at most twice this of
	// entries. Entries of everyday requests (Kubernetes objects of a few
	// KiB) reach --snapshot-catchup-entries long before it; entries of
	// bulk loads (transactions of ~600 KB) kept 3-9 GB of log.
	DefaultSnapshotCatchUpBytes = 256 << 20
	// DefaultGatherWindow and MaxGatherWindow bound --raft-gather-window
	// (docs/adr/0027-leader-gathers-proposals.md has the measurements).
	DefaultGatherWindow = time.Millisecond
	MaxGatherWindow     = 100 * time.Millisecond
	// MinMemoryFlagBytes is the smallest value the memory-sizing flags take.
	MinMemoryFlagBytes = 1 << 20
	// maxMemtableBytes is Pebble's own bound on a memtable (4 GiB).
	maxMemtableBytes = 4<<30 - 1
)

// RangeBudget is the byte budget of range responses in flight: the flag, or
// an eighth of --memory-limit-bytes (1 GiB when memory is unlimited), at
// least 64 MiB. An eighth leaves room for the garbage collector's slack
// (the heap may reach twice what is live), the overdraft of one response
// (see package respbudget) and the storage caches; bench/scale measured a
// quarter at 2.1 GiB peak RSS under 20 LISTs of 100 MB, an eighth at 1.5.
func (l LimitsConfig) RangeBudget() int64 {
	if l.MaxRangeBytesInFlight > 0 {
		return l.MaxRangeBytesInFlight
	}
	if l.MemoryLimitBytes == 0 {
		return 1 << 30
	}
	return max(64<<20, l.MemoryLimitBytes/8)
}

// Burst is the token-bucket size in force for the per-client rate limit.
func (l LimitsConfig) Burst() int {
	if l.RateLimitBurst > 0 {
		return l.RateLimitBurst
	}
	return max(1, int(math.Ceil(l.RateLimitPerClient)))
}

// Default returns a Config with every default applied, as if metastore had
// been started with no flags.
func Default() *Config {
	c := &Config{
		Member: MemberConfig{
			Name:                DefaultName,
			ListenClientURLs:    mustURLs(defaultListenClientURL),
			AdvertiseClientURLs: mustURLs(defaultListenClientURL),
			ListenPeerURLs:      mustURLs(defaultListenPeerURL),
			AdvertisePeerURLs:   mustURLs(defaultListenPeerURL),
		},
		Cluster: ClusterConfig{
			State:               ClusterStateNew,
			Token:               "etcd-cluster",
			StrictReconfigCheck: true,
			MaxLearners:         1,
			V2Deprecation:       V2DeprecationDefault,
		},
		Discovery: DiscoveryConfig{
			DialTimeout:       2 * time.Second,
			RequestTimeout:    5 * time.Second,
			KeepAliveTime:     2 * time.Second,
			KeepAliveTimeout:  6 * time.Second,
			InsecureTransport: true,
			Fallback:          "exit",
		},
		Raft: RaftConfig{
			HeartbeatInterval:          100 * time.Millisecond,
			ElectionTimeout:            1000 * time.Millisecond,
			InitialElectionTickAdvance: true,
			PreVote:                    true,
			SnapshotCount:              10000,
			SnapshotCatchUpEntries:     5000,
			SnapshotCatchUpBytes:       DefaultSnapshotCatchUpBytes,
			PeerReadTimeout:            5 * time.Second,
			PeerWriteTimeout:           5 * time.Second,
			GatherWindow:               DefaultGatherWindow,
		},
		Storage: StorageConfig{
			Engine:       EnginePebble,
			MaxWALs:      5,
			MaxSnapshots: 5,
		},
		Quota: QuotaConfig{
			AutoCompactionMode:      CompactionModePeriodic,
			AutoCompactionRetention: "0",
			// etcd's flags default to 0, which its mvcc turns into these.
			CompactionBatchLimit:    1000,
			CompactionSleepInterval: 10 * time.Millisecond,
		},
		GRPC: GRPCConfig{
			MaxRequestBytes:      1572864,
			MaxTxnOps:            128,
			MaxConcurrentStreams: math.MaxUint32,
			KeepAliveMinTime:     5 * time.Second,
			KeepAliveInterval:    2 * time.Hour,
			KeepAliveTimeout:     20 * time.Second,
			EnableGateway:        true,
			CORS:                 []string{"*"},
			HostWhitelist:        []string{"*"},
		},
		TLS: TLSCommonConfig{
			MinVersion:             "TLS1.2",
			SelfSignedCertValidity: 1,
		},
		Auth: AuthConfig{
			Token:      "simple",
			TokenTTL:   300 * time.Second,
			BcryptCost: 10,
		},
		Log: LogConfig{
			Logger:             "zap",
			Level:              "info",
			Format:             "json",
			Outputs:            []string{logutil.OutputDefault},
			RotationConfigJSON: `{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}`,
		},
		Ops: OpsConfig{
			Metrics: "basic",
			// etcd's flag defaults to 0, which its watch server turns into 10m.
			WatchProgressNotifyInterval: 10 * time.Minute,
			CompactHashCheckTime:        time.Minute,
			WarningApplyDuration:        100 * time.Millisecond,
			WarningUnaryRequestDuration: 300 * time.Millisecond,
			DowngradeCheckTime:          5 * time.Second,
			Tracing: TracingConfig{
				Address:     "localhost:4317",
				ServiceName: "etcd",
			},
		},
		Features: DefaultFeatureGates(),
		Limits: LimitsConfig{
			MaxConnections:      10000,
			MaxRequestsInFlight: 5000,
			MemoryLimitBytes:    2 << 30,
			RequestTimeout:      30 * time.Second,
			ConnectionTimeout:   10 * time.Second,
			ShutdownTimeout:     30 * time.Second,

			StorageBlockCacheBytes: DefaultStorageBlockCacheBytes,
			StorageMemtableBytes:   DefaultStorageMemtableBytes,
			StorageKeyCacheBytes:   DefaultStorageKeyCacheBytes,
		},
		set: map[string]Source{},
	}
	c.Cluster.InitialCluster = initialClusterFromName(DefaultName, c.Member.AdvertisePeerURLs)
	c.Cluster.InitialMembers, _ = parseInitialCluster(c.Cluster.InitialCluster)
	return c
}

// LoggerConfig is the configuration logutil.New needs.
func (c *Config) LoggerConfig() logutil.LogConfig {
	return logutil.LogConfig{
		Name:    c.Member.Name,
		Logger:  c.Log.Logger,
		Level:   c.Log.Level,
		Format:  c.Log.Format,
		Outputs: slices.Clone(c.Log.Outputs),

		Rotate:       c.Log.EnableRotation,
		RotationJSON: c.Log.RotationConfigJSON,
	}
}

// IsNewCluster reports --initial-cluster-state=new.
func (c *Config) IsNewCluster() bool { return c.Cluster.State == ClusterStateNew }

// Source says where an explicitly set flag came from.
type Source int

// Sources of a setting, in the order etcd consults them.
const (
	SourceDefault Source = iota
	SourceFlag
	SourceEnv
	SourceFile
)

func (s Source) String() string {
	switch s {
	case SourceFlag:
		return "flag"
	case SourceEnv:
		return "env"
	case SourceFile:
		return "config-file"
	}
	return "default"
}

// SourceOf says where the named flag's value came from (SourceDefault when
// the user did not set it).
func (c *Config) SourceOf(flagName string) Source { return c.set[flagName] }

// IsSet reports whether the user set the named flag explicitly (flag,
// environment variable or config file).
func (c *Config) IsSet(flagName string) bool { return c.set[flagName] != SourceDefault }

// ExplicitlySet lists the flags the user set, sorted.
func (c *Config) ExplicitlySet() []string {
	names := make([]string, 0, len(c.set))
	for n, s := range c.set {
		if s != SourceDefault {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Warnings are the non-fatal findings of Parse and Validate (deprecated or
// ignored flags, unrecognized ETCD_* variables, ...), one message each.
func (c *Config) Warnings() []string { return slices.Clone(c.warnings) }

func (c *Config) warnf(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

// UnimplementedSet returns the names of flags the user explicitly set that
// the server does not act on yet (see implemented.go), sorted, so that the
// server can log one warning each.
func (c *Config) UnimplementedSet() []string {
	var out []string
	for _, n := range c.ExplicitlySet() {
		if impl, known := implemented[n]; known && !impl && noOps[n] == "" {
			out = append(out, n)
		}
	}
	return out
}

func mustURLs(s string) []url.URL {
	us, err := parseURLs(s)
	if err != nil {
		panic(err)
	}
	return us
}

// initialClusterFromName is etcd's default --initial-cluster for a member:
// name=each advertised peer URL.
func initialClusterFromName(name string, peers []url.URL) string {
	if name == "" {
		name = DefaultName
	}
	parts := make([]string, 0, len(peers))
	for _, u := range peers {
		parts = append(parts, name+"="+u.String())
	}
	return strings.Join(parts, ",")
}
