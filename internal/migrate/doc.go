// Package migrate moves a live etcd to metastore with a cut-over of seconds.
//
// A metastore cluster restored from an etcd snapshot with `metastore
// snapshot restore --migrate-token T` starts in migration mode, replicated
// state of the cluster (internal/migrate/mode), so that a member added
// during the migration is in it too: each member's Guard refuses client
// writes with a clear FailedPrecondition error, while reads and watches are
// served. The Follower (`metastore migrate follow`) watches
// the etcd cluster from the restored revision + 1 and turns the events of
// each etcd revision into one metastore Txn, sent with the token, so that
// etcd revision R becomes metastore revision R; any other outcome stops it
// (nothing half-applied: a revision is one Raft entry). It keeps the
// metastore leases alive and in line with etcd's, since a lease expiring on
// metastore alone would add a revision etcd does not have.
//
// `metastore migrate cutover` waits until metastore has applied etcd's last
// revision, checks that etcd is no longer written and that its auth state is
// the restored one, and ends migration mode (a control header on
// Maintenance.Status carrying the token makes the member commit the end
// through Raft), which opens every member for writes.
package migrate
