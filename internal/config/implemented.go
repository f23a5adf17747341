package config

// implemented says, for every flag, whether the server acts on it yet.
// Flip an entry to true when the feature lands. Flags set by the user whose
// entry is false are reported by UnimplementedSet, and the server logs one
// warning for each. TestImplementedTableCoversEveryFlag keeps this table and
// the flag list in step.
var implemented = map[string]bool{
	// Member / identity
	"name":                    true,
	"data-dir":                true,
	"wal-dir":                 true,
	"listen-client-urls":      true,
	"listen-client-http-urls": true,
	"advertise-client-urls":   true,
	"listen-peer-urls":        true,
	"socket-reuse-port":       true,
	"socket-reuse-address":    true,

	// Cluster bootstrap
	"initial-advertise-peer-urls": true,
	"initial-cluster":             true,
	"initial-cluster-state":       true,
	"initial-cluster-token":       true,
	"force-new-cluster":           true,
	"strict-reconfig-check":       true,
	"max-learners":                true,
	"v2-deprecation":              true, // etcd enforces "write-only" and reports it; see config.V2DeprecationDefault

	// Discovery
	"discovery-token":                    true,
	"discovery-endpoints":                true,
	"discovery-dial-timeout":             true,
	"discovery-request-timeout":          true,
	"discovery-keepalive-time":           true,
	"discovery-keepalive-timeout":        true,
	"discovery-insecure-transport":       true,
	"discovery-insecure-skip-tls-verify": true,
	"discovery-cert":                     true,
	"discovery-key":                      true,
	"discovery-cacert":                   true,
	"discovery-user":                     true,
	"discovery-password":                 true,
	"discovery-fallback":                 true,
	"discovery-srv":                      true,
	"discovery-srv-name":                 true,

	// Raft
	"heartbeat-interval":            true,
	"election-timeout":              true,
	"initial-election-tick-advance": true,
	"pre-vote":                      true,
	"snapshot-count":                true,
	"snapshot-catchup-entries":      true,
	"raft-read-timeout":             true,
	"raft-write-timeout":            true,

	// Storage
	"storage-engine":                       true,
	"unsafe-no-fsync":                      true,
	"memory-mlock":                         true,
	"max-wals":                             false,
	"max-snapshots":                        false,
	"backend-batch-interval":               false,
	"backend-batch-limit":                  false,
	"backend-bbolt-freelist-type":          false,
	"bootstrap-defrag-threshold-megabytes": true,

	// Quota / compaction
	"quota-backend-bytes":       true,
	"auto-compaction-mode":      true,
	"auto-compaction-retention": true,
	"compaction-batch-limit":    true,
	"compaction-sleep-interval": true,

	// gRPC
	"max-request-bytes":       true,
	"max-txn-ops":             true,
	"max-concurrent-streams":  true,
	"grpc-keepalive-min-time": true,
	"grpc-keepalive-interval": true,
	"grpc-keepalive-timeout":  true,
	"enable-grpc-gateway":     true,
	"cors":                    true,
	"host-whitelist":          true,

	// TLS
	"cert-file":                         true,
	"key-file":                          true,
	"client-cert-file":                  true,
	"client-key-file":                   true,
	"trusted-ca-file":                   true,
	"client-cert-auth":                  true,
	"client-crl-file":                   true,
	"client-cert-allowed-hostname":      true,
	"auto-tls":                          true,
	"peer-cert-file":                    true,
	"peer-key-file":                     true,
	"peer-client-cert-file":             true,
	"peer-client-key-file":              true,
	"peer-trusted-ca-file":              true,
	"peer-client-cert-auth":             true,
	"peer-crl-file":                     true,
	"peer-cert-allowed-cn":              true,
	"peer-cert-allowed-hostname":        true,
	"peer-auto-tls":                     true,
	"peer-skip-client-san-verification": true,
	"self-signed-cert-validity":         true,
	"cipher-suites":                     true,
	"tls-min-version":                   true,
	"tls-max-version":                   true,

	// Auth
	"auth-token":     true,
	"auth-token-ttl": true,
	"bcrypt-cost":    true,

	// Logging
	"logger":                   true,
	"log-level":                true,
	"log-format":               true,
	"log-outputs":              true,
	"enable-log-rotation":      true,
	"log-rotation-config-json": true,

	// Metrics / ops
	"metrics":                           true,
	"listen-metrics-urls":               true,
	"enable-pprof":                      true,
	"watch-progress-notify-interval":    true,
	"corrupt-check-time":                true,
	"compact-hash-check-time":           true,
	"warning-apply-duration":            true,
	"warning-unary-request-duration":    true,
	"downgrade-check-time":              true,
	"enable-distributed-tracing":        true,
	"distributed-tracing-address":       true,
	"distributed-tracing-service-name":  true,
	"distributed-tracing-instance-id":   true,
	"distributed-tracing-sampling-rate": true,

	// Feature gates: the flag is acted on; of its gates, those metastore
	// does not act on (features.go, featuresWithoutEffect) are purely
	// internal to etcd (TxnModeWriteWithSharedBuffer, PriorityRequest) or
	// describe what metastore always does, and each is logged once with
	// the reason when named.
	"feature-gates": true,

	// Reliability layer (metastore's own)
	"max-connections":        true,
	"max-requests-in-flight": true,
	"memory-limit-bytes":     true,
	"request-timeout":        true,
	"connection-timeout":     true,
	"shutdown-timeout":       true,
	"rate-limit-per-client":  true,
	"rate-limit-burst":       true,

	// Memory sizing (metastore's own)
	"max-range-bytes-in-flight": true,
	"storage-block-cache-bytes": true,
	"storage-memtable-bytes":    true,
	"storage-key-cache-bytes":   true,
	"snapshot-catchup-bytes":    true,

	// Group commit (metastore's own)
	"raft-gather-window": true,
}

// noOps are the flags that tune bbolt or etcd's WAL and snapshot files,
// which metastore does not have; each is accepted and, when set, logged
// once with the reason it has no effect (NoOpSet). They stay false in
// implemented.
var noOps = map[string]string{
	"max-wals": "the Raft log lives in the storage engine and is trimmed by --snapshot-count/--snapshot-catchup-entries; " +
		"there are no WAL files to retain",
	"max-snapshots": "Raft snapshots are streamed from the live engine on demand; there are no snapshot files to retain",
	"backend-batch-interval": "each apply batch is committed to Pebble when it is applied; there is no bbolt " +
		"transaction to hold open",
	"backend-batch-limit": "each apply batch is committed to Pebble when it is applied; there is no bbolt " +
		"transaction to hold open",
	"backend-bbolt-freelist-type": "there is no bbolt free list: Pebble keeps track of its own free space",
}

// NoOp is a flag the user set that has no effect on metastore, and why.
type NoOp struct {
	Flag, Reason string
}

// NoOpSet returns the bbolt- and WAL-file-only flags the user explicitly
// set, in the order they were given, with the reason each does nothing.
func (c *Config) NoOpSet() []NoOp {
	var out []NoOp
	for _, n := range c.ExplicitlySet() {
		if r, ok := noOps[n]; ok {
			out = append(out, NoOp{Flag: n, Reason: r})
		}
	}
	return out
}
