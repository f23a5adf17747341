// Package corruption holds the leader's cross-member consistency checks,
// which raise the CORRUPT alarm through Raft for divergent members. Once
// raised, every member refuses KV and lease requests with etcd's "corrupt
// cluster" until an operator disarms the alarm, so divergent data is never
// served silently.
//
//   - checker.go: etcd's --corrupt-check-time check. It compares HashKV of
//     every member at the same revision and compact revision and raises the
//     alarm for each member whose state differs from the majority's: a
//     follower, or the leader itself when a majority disagrees with it (the
//     leader's own hash is not taken as the truth; see Decide).
//   - compact.go: etcd's CompactHashCheck (--feature-gates
//     CompactHashCheck=true, --compact-hash-check-time), the hashes every
//     member recorded at the latest compaction revision, grouped as etcd
//     groups them: the minority is flagged, member 0 when no majority exists.
package corruption
