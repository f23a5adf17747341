// Package txn implements etcd's KV request semantics (Range, RangeStream,
// Put, DeleteRange, Txn and their validation) on top of package mvcc.
//
// Writes run on the apply goroutine through an mvcc.Writer and must be
// deterministic: every member applies the same log and must reach the same
// state and responses. Reads run on any goroutine against the published
// state. The rules mirror etcd v3.7's server/etcdserver/txn and
// api/v3rpc/key.go; where they look odd (compares of nested txns see the state
// before the outer txn, a delete with range_end "\x00" never conflicts with a
// put in the duplicate-key check), that is etcd's observable behaviour.
package txn
