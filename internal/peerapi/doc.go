// Package peerapi is the one registry of the HTTP routes members serve each
// other on their peer listeners: raft's message streams and snapshots
// (internal/transport), and the calls a member makes on another that are
// not raft messages — lease keep-alives and TTL queries forwarded to the
// leader (internal/backend), the leader's corruption check asking for a
// member's hash (internal/corruption), a joining member asking for the
// member list (internal/member/bootstrap) and a learner promotion forwarded
// to the leader (internal/member/reconfig). Every path is declared here and
// every non-raft handler is registered through Handlers.Register, so a
// route cannot be added, renamed or served twice without this file saying
// so.
package peerapi
