// Package robustness runs clusters of the real metastore binary under
// recorded client traffic while it injects faults (kill -9, SIGSTOP, graceful
// restart, peer-path network faults through tests/framework's PeerProxy,
// leader transfer, member replacement, compaction and defragmentation,
// snapshot catch-up, lease churn across leader changes; and, with the
// binary built with -tags failpoints, a panic at each persistence, apply,
// snapshot, compaction and watch step and slow Raft-log syncs, commits and
// watch sends through gofail's endpoint), then validates the
// history with etcd's robustness packages (go.etcd.io/etcd/tests/v3/
// robustness: recording clients, traffic profiles, model, porcupine):
// linearizability of every KV and lease request, the watch guarantees and
// serializable reads against the requests the members persisted.
//
// The persisted requests come from the stopped members' data dirs: the Raft
// log lives in the Pebble engine (docs/adr/0002), so persisted.go reads it
// through internal/raftlog.ReadPersisted, with the entries that
// --snapshot-count compaction trimmed kept by the test-only
// METASTORE_TEST_RETAIN_RAFT_LOG (server/testenv.go).
//
// A run passes only when every validation reports Success: a porcupine
// timeout or an unknown result fails it. docs/robustness.md says how to run
// the CI campaign and longer randomized ones (campaign.sh).
package robustness
