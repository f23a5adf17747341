// Package corruption is the leader's periodic cross-member consistency
// check (etcd's --corrupt-check-time): it compares HashKV of every member
// at the same revision and raises the CORRUPT alarm, through Raft, for a
// member whose state differs from the leader's. Once raised, every member
// refuses KV and lease requests with etcd's "corrupt cluster" until an
// operator disarms the alarm, so divergent data is never served silently.
package corruption
