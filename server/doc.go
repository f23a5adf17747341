// Package server is metastore's public, embeddable composition root, as
// etcd's embed package is meant to be: a Config (ParseFlags), New (checks
// the config, opens nothing), Start (opens storage, starts Raft, the apply
// loop and the listeners, returns once the member serves), Stop (four-phase
// shutdown), Done and Err (a fatal error that stopped the member).
//
// It only wires the internal packages together: listeners, TLS, the gRPC
// middleware chain and services, the peer routes (internal/peerapi) and the
// background loops. The domain logic it wires lives elsewhere: a member's
// identity and the join protocol in internal/member/bootstrap, membership
// changes and their forwarding to the leader in internal/member/reconfig,
// the transport's peer set in internal/member/peers, the learner rules in
// internal/member/learner, Raft snapshot transfer and state reload in
// internal/member/snapinstall. docs/architecture.md describes the whole.
package server
