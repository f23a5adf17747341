// Package simcluster is a deterministic in-process cluster for tests: N
// members, each with its own memory engine, Raft log (internal/raftlog),
// applier (internal/apply) and the state it applies to (mvcc, leases, auth,
// alarms, the member list), Raft snapshot transfer through
// internal/member/snapinstall, and a raft.RawNode — all driven from the
// test's goroutine. Nothing runs unless the test says so:
//
//   - messages go into one queue the test controls: deliver all or some,
//     drop, reorder with a seed, partition and heal;
//   - time moves only by Tick (raft's logical clock) and Advance (the one
//     clock.Fake every lessor reads);
//   - each member's Ready is handled synchronously, in member-ID order,
//     with the rules of internal/raftnode (a leader sends before it
//     persists, a follower after; a snapshot is installed before the
//     entries that follow it; a conf change is applied before Advance).
//
// So the same script (and seed) gives the same message order and the same
// result, which Trace records. Scenarios are datadriven scripts in
// testdata/ (the format of go.etcd.io/raft's interaction tests); the
// commands are listed in script_test.go. docs/adr/0006 says why this
// drives raft.RawNode with a loop of its own rather than internal/raftnode's
// goroutines.
package simcluster
