// Package learner holds etcd's rule for client requests on a learner. A
// learner replicates the log but is in no quorum, so its state may lag and
// it cannot take part in a linearizable read or accept a write of its own.
// etcd therefore refuses every client request on a learner except Status
// and serializable Range (unary) and Snapshot (stream), with
// FailedPrecondition "etcdserver: rpc not supported for learner"; clients
// move on to another endpoint. The interceptors here refuse the same set,
// and run before any other (internal/middleware's role slot), as etcd's
// v3rpc interceptor does.
package learner
