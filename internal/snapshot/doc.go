// Package snapshot is metastore's side of `etcdctl snapshot save` and
// `etcdutl snapshot restore`.
//
// Export writes a point-in-time view of the engine as etcd's own backend file
// (internal/etcdsnap): the MVCC history with its revisions, the compaction
// revisions, leases, auth and alarms. Maintenance.Snapshot streams that file
// followed by its SHA-256, so etcdutl reads what etcdctl saved from metastore,
// and the same file restores into etcd or metastore.
//
// Restore turns a snapshot file into a new member's data dir: etcd backend
// files from etcd v3.5-v3.7 or from metastore (imported with their original
// revisions through mvcc.Importer), and the tar archives of a Pebble
// checkpoint earlier metastore versions streamed. The Raft log, member list
// and IDs are not carried over: the member bootstraps a new cluster from its
// start flags, as after `etcdutl snapshot restore`.
package snapshot
