// Package leadership holds a member's decisions about who leads: etcd's
// MoveLeader (only the leader may move leadership, and only to a voting
// member; the call returns once the transferee leads), the hand-off a
// leader makes when it stops gracefully (to the voting follower with the
// longest matched log among those reachable now, so that the cluster does
// not sit out an election timeout during a rolling restart; ADR 12), and
// the initial election tick advance (etcd's adjustTicks), which lets a
// restarted member of a cluster whose leader is gone campaign after two
// ticks instead of a full election timeout.
//
// Transferee is a pure function of raft's progress so that the choice can
// be tested on a real raft status (internal/simcluster's transferee
// command).
package leadership
