// Package corruption holds the cross-member consistency checks: the
// leader's, which raise the CORRUPT alarm through Raft for divergent
// members, and the one a member runs on itself at start. Once raised, the
// alarm makes every member refuse KV and lease requests with etcd's
// "corrupt cluster" until an operator disarms it, so divergent data is
// never served silently.
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
//   - initial.go: etcd's InitialCorruptCheck (--feature-gates
//     InitialCorruptCheck=true), run by a restarting member before Raft
//     starts: its hash at its current revision against each peer's, and
//     any difference over the same compacted window refuses the start (no
//     alarm: the member never serves).
//   - peer.go: the peer HashKV route (peerapi.PathHashKV) both ends, and
//     URLCaller, which reaches it before the member's transport exists.
package corruption
