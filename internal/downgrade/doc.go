// Package downgrade answers the Maintenance Downgrade RPC (etcdctl
// downgrade validate|enable|cancel) as etcd does for a cluster at
// metastore's version, and keeps the cluster's replicated downgrade state
// (enabled, target version), which Status reports as downgradeInfo.
//
// As in etcd, the only allowed target is the previous minor version of the
// cluster version; enable and cancel go through Raft (etcd's
// DowngradeInfoSet request), and validate and cancel first wait for a
// linearizable read so they never act on stale state. Monitor is the
// leader's --downgrade-check-time loop, which ends the downgrade once every
// member runs the target version. Departure (docs/adr/0014-downgrade-keeps-cluster-version.md):
// metastore keeps reporting its own cluster and storage version while a
// downgrade is enabled, since no member can ever run the older version.
package downgrade
