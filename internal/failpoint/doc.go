// Package failpoint marks the steps of persistence, apply, snapshot and
// compaction where a fault-injection test may stop the member (panic), slow
// it down (sleep) or otherwise interfere, with go.etcd.io/gofail's runtime.
//
// A call site is one line, failpoint.Inject(failpoint.RaftBeforeSave). The
// points use etcd's failpoint names where the step is the same, so etcd's
// robustness tooling and ours can toggle them by name (see names.go for what
// each one brackets here).
//
// Without the build tag `failpoints`, Inject is an empty function the
// compiler inlines away: production binaries carry no failpoint code and no
// gofail runtime. Built with `-tags failpoints`, every name in Names is
// registered with gofail at start, and gofail's runtime serves its HTTP
// endpoint when GOFAIL_HTTP=host:port is set (PUT /name with a term such as
// `panic`, `sleep(100)` or `1*panic`; GET / lists the points; DELETE /name
// disables one) and reads GOFAIL_FAILPOINTS="name=term;..." at start, as
// an etcd built with gofail does.
//
// We do not use gofail's source rewriting (comments turned into code by
// `gofail enable`): the hooks are plain calls, so the tagged and untagged
// builds compile from the same files and nothing has to be rewritten before
// a test build (docs/adr/0010-failpoints-without-source-rewriting.md).
// A panic at a failpoint names it (PanicMessage), so that a test can tell
// from a member's log where it died, and is a Crash, which the recoverers
// of request handlers and supervised goroutines let through: as in etcd, a
// failpoint's panic kills the member, wherever it runs.
// Terms that return a value (`return(...)`) have no effect at an Inject
// point: those are places to panic or sleep. A Hold point (Hold) waits
// while its term returns a value, so that a test can keep a long step
// (defragmentation) under way for as long as it looks at the member.
package failpoint
