// Package framework runs the metastore binary as a real OS process for
// end-to-end tests: it builds the binary once per test process, starts members
// with etcd-style flags on free 127.0.0.1 ports, waits until they serve, and
// offers crash (SIGKILL), graceful stop and restart with the same data dir.
//
// With Options.PeerProxy a member sits behind a PeerProxy on its peer
// listener, through which a test blackholes, delays or drops what the
// member receives or what one member sends (tests/robustness).
//
// Tests talk to members with clientv3 and with the real etcdctl v3.7.3 built
// by scripts/install-tools.sh into <repo>/.bin, so they check wire
// compatibility exactly as etcd users see it. Every process is killed in
// t.Cleanup, so a failing or panicking test never leaks a server.
//
// Environment:
//   - METASTORE_E2E_SERVER_BIN: use this server binary instead of building
//     ./cmd/metastore (e.g. .bin/etcd-ref to check a test against real etcd);
//     a relative path is resolved against the repository root.
//   - METASTORE_REQUIRE_TOOLS: when set, a missing .bin tool fails the test
//     instead of skipping it (CI sets it).
//   - METASTORE_TOOLS_BIN: where the tools are (default <repo>/.bin).
package framework
