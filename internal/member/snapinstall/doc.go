// Package snapinstall is a member's end of Raft snapshots of the state
// machine: on the leader it opens the image a lagging follower is sent
// (the transport streams it); on the follower it stages the image the
// transport receives, then, on the apply goroutine once raft hands the
// snapshot over, installs it (internal/raftsnap replaces the engine's
// contents) and reloads every in-memory structure derived from the engine:
// the MVCC index, leases, auth, alarms, the member list and with it the
// transport's peers; watchers then catch up from the installed history.
// See docs/adr/0004-raft-snapshots.md.
package snapinstall
