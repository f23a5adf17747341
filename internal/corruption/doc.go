// Package corruption holds the leader's cross-member consistency checks,
// which raise the CORRUPT alarm through Raft for divergent members. Once
// raised, every member refuses KV and lease requests with etcd's "corrupt
// cluster" until an operator disarms the alarm, so divergent data is never
// served silently.
//
//   - checker.go: etcd's --corrupt-check-time check, HashKV of every member
//     at the leader's current revision. A member whose hash differs from the
//     leader's is flagged; when a majority of all members agree, the ones
//     outside it are (so a damaged leader flags itself, not its peers).
//   - compact.go: etcd's CompactHashCheck (--feature-gates
//     CompactHashCheck=true, --compact-hash-check-time), the hashes every
//     member recorded at the latest compaction revision, grouped as etcd
//     groups them: the minority is flagged, member 0 when no majority exists.
package corruption
