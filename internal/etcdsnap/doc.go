// Package etcdsnap reads and writes etcd's backend file, the bbolt database
// `etcdctl snapshot save` stores (followed by its SHA-256) and `etcdutl
// snapshot restore` reads, so that data moves between etcd and metastore with
// every revision kept.
//
// The layout is etcd's storage schema (v3.5 to v3.7): bucket "key" maps a
// revision (8-byte big-endian main, '_', 8-byte big-endian sub, and a trailing
// 't' for a deletion) to an mvccpb.KeyValue; "meta" holds consistent_index,
// term, storageVersion and the scheduled/finished compaction revisions
// (revision-encoded); "lease" maps an 8-byte big-endian ID to a
// leasepb.Lease; "auth" holds authEnabled (one byte) and authRevision (8
// bytes big-endian); "authUsers" and "authRoles" map a name to an
// authpb.User or authpb.Role; "alarm" has a marshalled AlarmMember per active
// alarm as key; "cluster" holds clusterVersion; "members" and
// "members_removed" the membership, which a restore replaces.
//
// The names are written out here rather than taken from etcd's server
// packages, which register Prometheus collectors in the default registry
// when imported.
package etcdsnap
