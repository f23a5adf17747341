// Package mode is the replicated state of an online migration from etcd
// (internal/migrate): whether the cluster still follows etcd, and the token
// that authorises the follower and the cut-over.
//
// The state is one meta key of the storage engine (Key), so it is part of
// what every member replicates: `metastore snapshot restore --migrate-token`
// writes it on each restored member, a member added later receives it with
// the Raft snapshot that brings it the restored data, and the cut-over
// removes it on every member at once by a Raft entry (EndRequest) that the
// applier executes (StageEnd). A per-member file could not do this: a member
// added during the migration would hold no file and accept client writes.
//
// The end request is an etcd InternalRaftRequest carrying one field that
// etcd's schema does not define (FieldEnd), since the request set is etcd's
// and has no slot for it; see docs/adr/0008-etcd-snapshot-format-and-migration.md.
package mode
