// Package bootstrap decides who a member is when it starts: a restart reads
// the member ID its data dir records; a fresh start of a new cluster derives
// every member's ID and the cluster ID from --initial-cluster (so all
// members agree without talking) and hands raft the bootstrap peers; a
// fresh start with --initial-cluster-state=existing asks the cluster it
// joins for its member list and takes the ID that MemberAdd gave its peer
// URLs. It also serves that member list to joining members (both ends of the
// join protocol live here), publishes the member's name and client URLs
// through Raft before it reports ready (Publish), waits for that without a
// deadline (AwaitServing), compacts the Raft log of a data dir written by
// `metastore snapshot restore` so that members added later receive the
// restored state as a snapshot (CompactRestoredLog), and rewrites an
// existing member into a one-member cluster for --force-new-cluster.
//
// The identity records themselves are read and written only by
// internal/membership (identity.go).
package bootstrap
