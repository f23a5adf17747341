// Package server is metastore's public, embeddable composition root, as
// etcd's embed package is meant to be: a Config (ParseFlags), New (checks
// the config, opens nothing), Start (opens storage, starts Raft, the apply
// loop and the listeners, returns once the member serves), Stop (four-phase
// shutdown), Done and Err (a fatal error that stopped the member).
//
// It only builds the internal packages from the Config and wires them
// together; every decision is made in the package that owns it:
//
//   - a member's identity, the join protocol, discovery and the start-up
//     wait: internal/member/bootstrap, internal/discovery;
//   - membership changes and their forwarding: internal/member/reconfig,
//     the transport's peer set: internal/member/peers, the learner gate:
//     internal/member/learner, Raft snapshots: internal/member/snapinstall;
//   - who leads (MoveLeader, the hand-off on shutdown, the election tick
//     advance): internal/member/leadership;
//   - what the member reports (response headers, Status, health):
//     internal/member/status, internal/member/maintenance;
//   - listeners, TLS and the member's own client: internal/listen,
//     internal/tlsflags, internal/selfclient; memory sizing:
//     internal/memsize; shutdown phases and the gRPC drain:
//     internal/lifecycle.
//
// Each service receives the narrow collaborator it needs, never the Server.
// Files: server.go (Config, New, Start, Stop, Done, Err), storage.go and
// auth.go (opening the stores), raft.go (the consensus side and the peer
// routes), listeners.go (the client side and the gRPC services),
// reliability.go (metrics, supervisor, health, the interceptor chain),
// background.go and corruption.go (the supervised loops), tracing.go,
// shutdown.go (the four phases). docs/architecture.md
// describes the whole: packages, goroutines, locks.
//
// Locks: errMu guards err; everything else is written by Start before the
// goroutines that read it begin, or by Stop's phases, which run one after
// another.
package server
