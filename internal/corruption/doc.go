// Package corruption is the leader's periodic cross-member consistency
// check (etcd's --corrupt-check-time): it compares HashKV of every member
// at the same revision and compact revision and raises the CORRUPT alarm,
// through Raft, for each member whose state differs from the majority's:
// a follower, or the leader itself when a majority disagrees with it (the
// leader's own hash is not taken as the truth; see Decide). Once raised,
// every member refuses KV and lease requests with etcd's "corrupt cluster"
// until an operator disarms the alarm, so divergent data is never served
// silently.
package corruption
