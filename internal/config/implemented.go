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
	"v2-deprecation":              false,

	// Discovery
	"discovery-token":                    false,
	"discovery-endpoints":                false,
	"discovery-dial-timeout":             false,
	"discovery-request-timeout":          false,
	"discovery-keepalive-time":           false,
	"discovery-keepalive-timeout":        false,
	"discovery-insecure-transport":       false,
	"discovery-insecure-skip-tls-verify": false,
	"discovery-cert":                     false,
	"discovery-key":                      false,
	"discovery-cacert":                   false,
	"discovery-user":                     false,
	"discovery-password":                 false,
	"discovery-fallback":                 false,
	"discovery-srv":                      false,
	"discovery-srv-name":                 false,

	// Raft
	"heartbeat-interval":            true,
	"election-timeout":              true,
	"initial-election-tick-advance": false,
	"pre-vote":                      true,
	"snapshot-count":                true,
	"snapshot-catchup-entries":      true,
	"raft-read-timeout":             false,
	"raft-write-timeout":            false,

	// Storage
	"storage-engine":                       true,
	"unsafe-no-fsync":                      true,
	"memory-mlock":                         true,
	"max-wals":                             false,
	"max-snapshots":                        false,
	"backend-batch-interval":               false,
	"backend-batch-limit":                  false,
	"backend-bbolt-freelist-type":          true, // a deliberate no-op: there is no bbolt
	"bootstrap-defrag-threshold-megabytes": false,

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
	"self-signed-cert-validity":         false,
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
	"enable-log-rotation":      false,
	"log-rotation-config-json": false,

	// Metrics / ops
	"metrics":                           true,
	"listen-metrics-urls":               true,
	"enable-pprof":                      true,
	"watch-progress-notify-interval":    true,
	"corrupt-check-time":                true,
	"compact-hash-check-time":           false,
	"warning-apply-duration":            false,
	"warning-unary-request-duration":    false,
	"downgrade-check-time":              false,
	"enable-distributed-tracing":        false,
	"distributed-tracing-address":       false,
	"distributed-tracing-service-name":  false,
	"distributed-tracing-instance-id":   false,
	"distributed-tracing-sampling-rate": false,

	// Feature gates
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
}
