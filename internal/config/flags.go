package config

import (
	"flag"
	"io"
	"time"
)

// Help groups, in etcd's --help order, then metastore's own.
const (
	groupMember     = "Member"
	groupClustering = "Clustering"
	groupSecurity   = "Security"
	groupAuth       = "Auth"
	groupMonitoring = "Profiling and Monitoring"
	groupLogging    = "Logging"
	groupTracing    = "Distributed tracing"
	groupFeatures   = "Features"
	groupUnsafe     = "Unsafe feature"
	groupMetastore  = "metastore (storage engine and reliability)"
)

var groupOrder = []string{
	groupMember, groupClustering, groupSecurity, groupAuth, groupMonitoring,
	groupLogging, groupTracing, groupFeatures, groupUnsafe, groupMetastore,
}

// flagSpec is one flag: its name, where --help lists it, its help text and
// the Value that parses it into a Config.
type flagSpec struct {
	name  string
	group string
	usage string
	kind  kind
	value flag.Value
	// defText replaces the default shown by --help when the value's String
	// would mislead (e.g. data-dir's "${name}.metastore").
	defText string
}

// ignoredFlags are flags of old etcd releases that etcd v3.7.3 still accepts
// and ignores (etcdmain.ignored).
var ignoredFlags = []string{
	"cluster-active-size", "cluster-remove-delay", "cluster-sync-interval",
	"config", "force", "max-result-buffer", "max-retry-attempts",
	"peer-heartbeat-interval", "peer-election-timeout", "retry-interval",
	"snapshot", "v", "vv", "test.coverprofile", "test.outputdir",
}

// specs returns every flag bound to c. It is the single list of flags: the
// flag set, the environment, the config file and --help all come from it.
func specs(c *Config) []flagSpec {
	m, cl, d, r, st, q, g := &c.Member, &c.Cluster, &c.Discovery, &c.Raft, &c.Storage, &c.Quota, &c.GRPC
	ct, pt, t, a, l, o, tr, li := &c.ClientTLS, &c.PeerTLS, &c.TLS, &c.Auth, &c.Log, &c.Ops, &c.Ops.Tracing, &c.Limits
	dep := func(v flag.Value, msg string) flag.Value { return deprecatedValue{inner: v, c: c, msg: msg} }
	s := []flagSpec{
		// Member
		{"name", groupMember, "Human-readable name for this member.", kindString, stringValue{&m.Name}, ""},
		{"data-dir", groupMember, "Path to the data directory (metastore's default is '${name}.metastore'; etcd's is '${name}.etcd').", kindString, stringValue{&m.DataDir}, "${name}.metastore"},
		{"wal-dir", groupMember, "Path to the dedicated wal directory.", kindString, stringValue{&m.WALDir}, ""},
		{"snapshot-count", groupMember, "Number of committed transactions to trigger a snapshot.", kindInt, newInt(&r.SnapshotCount), ""},
		{"heartbeat-interval", groupMember, "Time (in milliseconds) of a heartbeat interval.", kindMillis, unitDuration{&r.HeartbeatInterval, time.Millisecond}, ""},
		{"election-timeout", groupMember, "Time (in milliseconds) for an election to timeout. See tuning documentation for details.", kindMillis, unitDuration{&r.ElectionTimeout, time.Millisecond}, ""},
		{"initial-election-tick-advance", groupMember, "Whether to fast-forward initial election ticks on boot for faster election.", kindBool, boolValue{&r.InitialElectionTickAdvance}, ""},
		{"listen-peer-urls", groupMember, "List of URLs to listen on for peer traffic.", kindList, urlsValue{&m.ListenPeerURLs}, ""},
		{"listen-client-urls", groupMember, "List of URLs to listen on for client grpc traffic and http as long as --listen-client-http-urls is not specified.", kindList, urlsValue{&m.ListenClientURLs}, ""},
		{"listen-client-http-urls", groupMember, "List of URLs to listen on for http only client traffic. Enabling this flag removes http services from --listen-client-urls.", kindList, urlsValue{&m.ListenClientHTTPURLs}, ""},
		{"max-snapshots", groupMember, "Maximum number of snapshot files to retain (0 is unlimited). Deprecated in v3.6 and will be decommissioned in v3.8.", kindInt, dep(newInt(&st.MaxSnapshots), "--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8."), ""},
		{"max-wals", groupMember, "Maximum number of wal files to retain (0 is unlimited).", kindInt, newInt(&st.MaxWALs), ""},
		{"memory-mlock", groupMember, "Enable to enforce etcd pages (in particular bbolt) to stay in RAM.", kindBool, boolValue{&st.MemoryMlock}, ""},
		{"quota-backend-bytes", groupMember, "Sets the maximum size (in bytes) that the backend database may consume. Exceeding this triggers an alarm and puts the member in read-only mode. Set to 0 to use the default 2GiB limit.", kindSize, sizeValue{&q.BackendBytes, true}, ""},
		{"backend-bbolt-freelist-type", groupMember, "BackendFreelistType specifies the type of freelist that boltdb backend uses (array and map are supported types). Accepted and ignored: metastore does not use bbolt.", kindString, stringValue{&st.BackendFreelistType}, "map"},
		{"backend-batch-interval", groupMember, "BackendBatchInterval is the maximum time before commit the backend transaction.", kindDuration, durationValue{&st.BackendBatchInterval}, ""},
		{"backend-batch-limit", groupMember, "BackendBatchLimit is the maximum operations before commit the backend transaction.", kindInt, newInt(&st.BackendBatchLimit), ""},
		{"max-txn-ops", groupMember, "Maximum number of operations permitted in a transaction.", kindInt, newNonNeg(&g.MaxTxnOps), ""},
		{"max-request-bytes", groupMember, "Maximum client request size in bytes the server will accept.", kindSize, sizeValue{&g.MaxRequestBytes, false}, ""},
		{"max-concurrent-streams", groupMember, "Maximum concurrent streams that each client can open at a time.", kindInt, newInt(&g.MaxConcurrentStreams), ""},
		{"grpc-keepalive-min-time", groupMember, "Minimum duration interval that a client should wait before pinging server.", kindDuration, durationValue{&g.KeepAliveMinTime}, ""},
		{"grpc-keepalive-interval", groupMember, "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).", kindDuration, durationValue{&g.KeepAliveInterval}, ""},
		{"grpc-keepalive-timeout", groupMember, "Additional duration of wait before closing a non-responsive connection (0 to disable).", kindDuration, durationValue{&g.KeepAliveTimeout}, ""},
		{"socket-reuse-port", groupMember, "Enable to set socket option SO_REUSEPORT on listeners allowing rebinding of a port already in use.", kindBool, boolValue{&m.SocketReusePort}, ""},
		{"socket-reuse-address", groupMember, "Enable to set socket option SO_REUSEADDR on listeners allowing binding to an address in TIME_WAIT state.", kindBool, boolValue{&m.SocketReuseAddress}, ""},
		{"enable-grpc-gateway", groupMember, "Enable GRPC gateway.", kindBool, boolValue{&g.EnableGateway}, ""},
		{"raft-read-timeout", groupMember, "Read timeout set on each raft peer connection.", kindDuration, durationValue{&r.PeerReadTimeout}, ""},
		{"raft-write-timeout", groupMember, "Write timeout set on each raft peer connection.", kindDuration, durationValue{&r.PeerWriteTimeout}, ""},
		{"feature-gates", groupMember, "A set of key=value pairs that describe server level feature gates for alpha/experimental features.", kindFeatureSet, featureValue{&c.Features}, ""},

		// Clustering
		{"initial-advertise-peer-urls", groupClustering, "List of this member's peer URLs to advertise to the rest of the cluster.", kindList, urlsValue{&m.AdvertisePeerURLs}, ""},
		{"initial-cluster", groupClustering, "Initial cluster configuration for bootstrapping.", kindString, stringValue{&cl.InitialCluster}, ""},
		{"initial-cluster-state", groupClustering, "Initial cluster state ('new' when bootstrapping a new cluster or 'existing' when adding new members to an existing cluster). After successful initialization (bootstrapping or adding), flag is ignored on restarts.", kindString, choiceValue{&cl.State, []string{ClusterStateNew, ClusterStateExisting}}, ""},
		{"initial-cluster-token", groupClustering, "Initial cluster token for the cluster during bootstrap. Specifying this can protect you from unintended cross-cluster interaction when running multiple clusters.", kindString, stringValue{&cl.Token}, ""},
		{"advertise-client-urls", groupClustering, "List of this member's client URLs to advertise to the public. The client URLs advertised should be accessible to machines that talk to the cluster.", kindList, urlsValue{&m.AdvertiseClientURLs}, ""},
		{"discovery-token", groupClustering, "V3 discovery: discovery token for the cluster to be bootstrapped.", kindString, stringValue{&d.Token}, ""},
		{"discovery-endpoints", groupClustering, "V3 discovery: List of gRPC endpoints of the discovery service.", kindList, listValue{&d.Endpoints, true}, ""},
		{"discovery-dial-timeout", groupClustering, "V3 discovery: dial timeout for client connections.", kindDuration, durationValue{&d.DialTimeout}, ""},
		{"discovery-request-timeout", groupClustering, "V3 discovery: timeout for discovery requests (excluding dial timeout).", kindDuration, durationValue{&d.RequestTimeout}, ""},
		{"discovery-keepalive-time", groupClustering, "V3 discovery: keepalive time for client connections.", kindDuration, durationValue{&d.KeepAliveTime}, ""},
		{"discovery-keepalive-timeout", groupClustering, "V3 discovery: keepalive timeout for client connections.", kindDuration, durationValue{&d.KeepAliveTimeout}, ""},
		{"discovery-insecure-transport", groupClustering, "V3 discovery: disable transport security for client connections.", kindBool, boolValue{&d.InsecureTransport}, ""},
		{"discovery-insecure-skip-tls-verify", groupClustering, "V3 discovery: skip server certificate verification (CAUTION: this option should be enabled only for testing purposes).", kindBool, boolValue{&d.InsecureSkipTLSVerify}, ""},
		{"discovery-cert", groupClustering, "V3 discovery: identify secure client using this TLS certificate file.", kindString, stringValue{&d.CertFile}, ""},
		{"discovery-key", groupClustering, "V3 discovery: identify secure client using this TLS key file.", kindString, stringValue{&d.KeyFile}, ""},
		{"discovery-cacert", groupClustering, "V3 discovery: verify certificates of TLS-enabled secure servers using this CA bundle.", kindString, stringValue{&d.CAFile}, ""},
		{"discovery-user", groupClustering, "V3 discovery: username[:password] for authentication (prompt if password is not supplied).", kindString, stringValue{&d.User}, ""},
		{"discovery-password", groupClustering, "V3 discovery: password for authentication (if this option is used, --user option shouldn't include password).", kindString, stringValue{&d.Password}, ""},
		{"discovery-fallback", groupClustering, "Expected behavior ('exit') when discovery services fails. Note that v2 proxy is removed.", kindString, choiceValue{&d.Fallback, []string{"exit", "proxy"}}, ""},
		{"discovery-srv", groupClustering, "DNS srv domain used to bootstrap the cluster.", kindString, stringValue{&d.SRV}, ""},
		{"discovery-srv-name", groupClustering, "Suffix to the dns srv name queried when bootstrapping.", kindString, stringValue{&d.SRVName}, ""},
		{"strict-reconfig-check", groupClustering, "Reject reconfiguration requests that would cause quorum loss.", kindBool, boolValue{&cl.StrictReconfigCheck}, ""},
		{"pre-vote", groupClustering, "Enable the raft Pre-Vote algorithm to prevent disruption when a node that has been partitioned away rejoins the cluster.", kindBool, boolValue{&r.PreVote}, ""},
		{"auto-compaction-retention", groupClustering, "Auto compaction retention length. 0 means disable auto compaction.", kindString, stringValue{&q.AutoCompactionRetention}, ""},
		{"auto-compaction-mode", groupClustering, "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention.", kindString, stringValue{&q.AutoCompactionMode}, ""},
		{"v2-deprecation", groupClustering, "Phase of v2store deprecation. Deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input. Accepted values (comma-separated, as etcd): 'write-only', 'write-only-skip-check', 'write-only-drop-data', 'gone'.", kindString, dep(selectiveStringsValue{&cl.V2DeprecationGiven, v2DeprecationValues}, v2DeprecationWarning), V2DeprecationDefault},

		// Security
		{"cert-file", groupSecurity, "Path to the client server TLS cert file.", kindString, stringValue{&ct.CertFile}, ""},
		{"key-file", groupSecurity, "Path to the client server TLS key file.", kindString, stringValue{&ct.KeyFile}, ""},
		{"client-cert-auth", groupSecurity, "Enable client cert authentication.", kindBool, boolValue{&ct.ClientCertAuth}, ""},
		{"client-cert-file", groupSecurity, "Path to an explicit peer client TLS cert file otherwise cert file will be used when client auth is required.", kindString, stringValue{&ct.ClientCertFile}, ""},
		{"client-key-file", groupSecurity, "Path to an explicit peer client TLS key file otherwise key file will be used when client auth is required.", kindString, stringValue{&ct.ClientKeyFile}, ""},
		{"client-crl-file", groupSecurity, "Path to the client certificate revocation list file.", kindString, stringValue{&ct.CRLFile}, ""},
		{"client-cert-allowed-hostname", groupSecurity, "Comma-separated list of SAN hostnames for client cert authentication.", kindList, listValue{&ct.AllowedHostnames, false}, ""},
		{"trusted-ca-file", groupSecurity, "Path to the client server TLS trusted CA cert file.", kindString, stringValue{&ct.TrustedCAFile}, ""},
		{"auto-tls", groupSecurity, "Client TLS using generated certificates.", kindBool, boolValue{&ct.AutoTLS}, ""},
		{"peer-cert-file", groupSecurity, "Path to the peer server TLS cert file.", kindString, stringValue{&pt.CertFile}, ""},
		{"peer-key-file", groupSecurity, "Path to the peer server TLS key file.", kindString, stringValue{&pt.KeyFile}, ""},
		{"peer-client-cert-auth", groupSecurity, "Enable peer client cert authentication.", kindBool, boolValue{&pt.ClientCertAuth}, ""},
		{"peer-client-cert-file", groupSecurity, "Path to an explicit peer client TLS cert file otherwise peer cert file will be used when client auth is required.", kindString, stringValue{&pt.ClientCertFile}, ""},
		{"peer-client-key-file", groupSecurity, "Path to an explicit peer client TLS key file otherwise peer key file will be used when client auth is required.", kindString, stringValue{&pt.ClientKeyFile}, ""},
		{"peer-trusted-ca-file", groupSecurity, "Path to the peer server TLS trusted CA file.", kindString, stringValue{&pt.TrustedCAFile}, ""},
		{"peer-cert-allowed-cn", groupSecurity, "Comma-separated list of allowed CNs for inter-peer TLS authentication.", kindList, listValue{&pt.AllowedCNs, false}, ""},
		{"peer-cert-allowed-hostname", groupSecurity, "Comma-separated list of allowed SAN hostnames for inter-peer TLS authentication.", kindList, listValue{&pt.AllowedHostnames, false}, ""},
		{"peer-auto-tls", groupSecurity, "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.", kindBool, boolValue{&pt.AutoTLS}, ""},
		{"self-signed-cert-validity", groupSecurity, "The validity period of the client and peer certificates that are automatically generated when you specify ClientAutoTLS and PeerAutoTLS, the unit is year, and the default is 1.", kindInt, newInt(&t.SelfSignedCertValidity), ""},
		{"peer-crl-file", groupSecurity, "Path to the peer certificate revocation list file.", kindString, stringValue{&pt.CRLFile}, ""},
		{"cipher-suites", groupSecurity, "Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).", kindList, listValue{&t.CipherSuites, false}, ""},
		{"cors", groupSecurity, "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).", kindList, listValue{&g.CORS, true}, ""},
		{"host-whitelist", groupSecurity, "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all).", kindList, listValue{&g.HostWhitelist, true}, ""},
		{"tls-min-version", groupSecurity, "Minimum TLS version supported. Possible values: TLS1.2, TLS1.3.", kindString, stringValue{&t.MinVersion}, ""},
		{"tls-max-version", groupSecurity, "Maximum TLS version supported. Possible values: TLS1.2, TLS1.3 (empty will be auto-populated by Go).", kindString, stringValue{&t.MaxVersion}, ""},

		// Auth
		{"auth-token", groupAuth, "Specify a v3 authentication token type and its options ('simple' or 'jwt').", kindString, stringValue{&a.Token}, ""},
		{"bcrypt-cost", groupAuth, "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords. Valid values are between 4 and 31.", kindInt, newNonNeg(&a.BcryptCost), ""},
		{"auth-token-ttl", groupAuth, "Time (in seconds) of the auth-token-ttl.", kindSeconds, unitDuration{&a.TokenTTL, time.Second}, ""},

		// Profiling and Monitoring
		{"enable-pprof", groupMonitoring, `Enable runtime profiling data via HTTP server. Address is at client URL + "/debug/pprof/"`, kindBool, boolValue{&o.EnablePprof}, ""},
		{"metrics", groupMonitoring, "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics.", kindString, stringValue{&o.Metrics}, ""},
		{"listen-metrics-urls", groupMonitoring, "List of URLs to listen on for the /metrics and /health endpoints. For https, the client URL TLS info is used.", kindList, urlsValue{&o.ListenMetricsURLs}, ""},

		// Logging
		{"logger", groupLogging, "Currently only supports 'zap' for structured logging.", kindString, stringValue{&l.Logger}, ""},
		{"log-outputs", groupLogging, "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.", kindList, listValue{&l.Outputs, true}, ""},
		{"log-level", groupLogging, "Configures log level. Only supports debug, info, warn, error, panic, or fatal.", kindString, stringValue{&l.Level}, ""},
		{"log-format", groupLogging, "Configures log format. Only supports json, console.", kindString, stringValue{&l.Format}, ""},
		{"enable-log-rotation", groupLogging, "Enable log rotation of a single log-outputs file target.", kindBool, boolValue{&l.EnableRotation}, ""},
		{"log-rotation-config-json", groupLogging, "Configures log rotation if enabled with a JSON logger config. MaxSize(MB), MaxAge(days,0=no limit), MaxBackups(0=no limit), LocalTime(use computers local time), Compress(gzip).", kindString, stringValue{&l.RotationConfigJSON}, ""},
		{"warning-unary-request-duration", groupLogging, "Set time duration after which a warning is logged if a unary request takes more than this duration.", kindDuration, durationValue{&o.WarningUnaryRequestDuration}, ""},

		// Distributed tracing
		{"enable-distributed-tracing", groupTracing, "Enable distributed tracing.", kindBool, boolValue{&tr.Enabled}, ""},
		{"distributed-tracing-address", groupTracing, "Distributed tracing collector address.", kindString, stringValue{&tr.Address}, ""},
		{"distributed-tracing-service-name", groupTracing, "Distributed tracing service name, must be same across all instances.", kindString, stringValue{&tr.ServiceName}, ""},
		{"distributed-tracing-instance-id", groupTracing, "Distributed tracing instance ID, must be unique per each instance.", kindString, stringValue{&tr.InstanceID}, ""},
		{"distributed-tracing-sampling-rate", groupTracing, "Number of samples to collect per million spans for distributed tracing.", kindInt, newInt(&tr.SamplingRatePerMillion), ""},

		// Features
		{"corrupt-check-time", groupFeatures, "Duration of time between cluster corruption check passes.", kindDuration, durationValue{&o.CorruptCheckTime}, ""},
		{"compact-hash-check-time", groupFeatures, "Duration of time between leader checks followers compaction hashes.", kindDuration, durationValue{&o.CompactHashCheckTime}, ""},
		{"compaction-batch-limit", groupFeatures, "CompactionBatchLimit sets the maximum revisions deleted in each compaction batch.", kindInt, newInt(&q.CompactionBatchLimit), ""},
		{"peer-skip-client-san-verification", groupFeatures, "Skip verification of SAN field in client certificate for peer connections.", kindBool, boolValue{&pt.SkipClientSANVerify}, ""},
		{"watch-progress-notify-interval", groupFeatures, "Duration of periodical watch progress notification.", kindDuration, durationValue{&o.WatchProgressNotifyInterval}, ""},
		{"warning-apply-duration", groupFeatures, "Warning is generated if requests take more than this duration.", kindDuration, durationValue{&o.WarningApplyDuration}, ""},
		{"bootstrap-defrag-threshold-megabytes", groupFeatures, "Enable the defrag during bootstrap on condition that it will free at least the provided threshold of disk space. Needs to be set to non-zero value to take effect.", kindInt, newInt(&st.BootstrapDefragThresholdMegabytes), ""},
		{"max-learners", groupFeatures, "Set the max number of learner members allowed in the cluster membership.", kindInt, newInt(&cl.MaxLearners), ""},
		{"compaction-sleep-interval", groupFeatures, "Sets the sleep interval between each compaction batch.", kindDuration, durationValue{&q.CompactionSleepInterval}, ""},
		{"downgrade-check-time", groupFeatures, "Duration of time between two downgrade status checks.", kindDuration, durationValue{&o.DowngradeCheckTime}, ""},
		{"snapshot-catchup-entries", groupFeatures, "Number of entries for a slow follower to catch up after compacting the raft storage entries.", kindInt, newInt(&r.SnapshotCatchUpEntries), ""},

		// Unsafe
		{"force-new-cluster", groupUnsafe, "Force to create a new one-member cluster.", kindBool, boolValue{&cl.ForceNewCluster}, ""},
		{"unsafe-no-fsync", groupUnsafe, "Disables fsync, unsafe, will cause data loss.", kindBool, boolValue{&st.UnsafeNoFsync}, ""},

		// metastore's own
		{"storage-engine", groupMetastore, "Storage engine: 'pebble' (on disk) or 'memory' (ephemeral, for tests).", kindString, stringValue{&st.Engine}, ""},
		{"max-connections", groupMetastore, "Maximum number of concurrent client connections (0 = unlimited).", kindInt, newNonNeg(&li.MaxConnections), ""},
		{"max-requests-in-flight", groupMetastore, "Maximum number of client requests processed at once; more get ResourceExhausted (0 = unlimited).", kindInt, newNonNeg(&li.MaxRequestsInFlight), ""},
		{"memory-limit-bytes", groupMetastore, "Heap size above which new writes get ResourceExhausted (0 = unlimited). Units such as 2GiB are accepted.", kindSize, sizeValue{&li.MemoryLimitBytes, false}, ""},
		{"request-timeout", groupMetastore, "Maximum time a client request may take when the client sets no deadline (not physical Compact, Defragment, Hash, HashKV: as in etcd, only the client bounds those).", kindDuration, durationValue{&li.RequestTimeout}, ""},
		{"connection-timeout", groupMetastore, "Time allowed for a new client connection to complete its handshake.", kindDuration, durationValue{&li.ConnectionTimeout}, ""},
		{"shutdown-timeout", groupMetastore, "Maximum time a graceful shutdown (SIGTERM/SIGINT) may take before remaining work is abandoned.", kindDuration, durationValue{&li.ShutdownTimeout}, ""},
		{"rate-limit-per-client", groupMetastore, "Requests per second allowed per client IP (0 = no limit).", kindFloat, floatValue{&li.RateLimitPerClient}, ""},
		{"rate-limit-burst", groupMetastore, "Burst size of the per-client rate limit (0 = the rate, rounded up).", kindInt, newNonNeg(&li.RateLimitBurst), ""},
		{"max-range-bytes-in-flight", groupMetastore, "Bytes of Range responses being built and sent at once, across all clients; past it big ranges wait (0 = an eighth of --memory-limit-bytes, at least 64MiB).", kindSize, sizeValue{&li.MaxRangeBytesInFlight, false}, ""},
		{"storage-block-cache-bytes", groupMetastore, "Size of the storage engine's block cache.", kindSize, sizeValue{&li.StorageBlockCacheBytes, false}, ""},
		{"storage-memtable-bytes", groupMetastore, "Size of one storage engine memtable (less than 4GiB).", kindSize, sizeValue{&li.StorageMemtableBytes, false}, ""},
		{"raft-gather-window", groupMetastore, "After a synced save of many entries, how long the leader may go on taking proposals for the next save (a member alone in its cluster; fewer, larger fsync batches under load; 0 = off; at most 100ms).", kindDuration, durationValue{&r.GatherWindow}, ""},
		{"snapshot-catchup-bytes", groupMetastore, "Bytes of the newest raft log entries kept for a slow follower to catch up after compacting the raft storage entries; the log is also compacted once this many bytes were applied since the last compaction (0 = count only, as --snapshot-count and --snapshot-catchup-entries).", kindSize, sizeValue{&r.SnapshotCatchUpBytes, false}, ""},
		{"storage-key-cache-bytes", groupMetastore, "Memory for the newest version of recently written keys, which writes and single-key reads use instead of the storage engine (0 = off).", kindSize, sizeValue{&li.StorageKeyCacheBytes, false}, ""},
	}
	return s
}

// metaFlags are handled by Parse itself rather than stored in a setting.
const (
	flagConfigFile = "config-file"
	flagVersion    = "version"

	flagV2Deprecation = "v2-deprecation"
)

// newFlagSet binds every flag to c. It prints nothing: Parse returns errors
// and main decides what to print.
func newFlagSet(c *Config) (*flag.FlagSet, map[string]flagSpec) {
	fs := flag.NewFlagSet("metastore", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	byName := map[string]flagSpec{}
	for _, s := range specs(c) {
		fs.Var(s.value, s.name, s.usage)
		byName[s.name] = s
	}
	fs.StringVar(&c.ConfigFile, flagConfigFile, "", "Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.")
	fs.BoolVar(&c.PrintVersion, flagVersion, false, "Print the version and exit.")
	for _, n := range ignoredFlags {
		fs.Var(ignoredValue{name: n, c: c}, n, "")
	}
	return fs, byName
}
