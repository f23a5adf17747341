// Package apply is the deterministic state machine: it takes committed Raft
// entries in log order and turns each into writes on MVCC, leases, auth and
// membership, together with the applied index, in ONE engine batch per group
// of entries. Because the applied index commits atomically with the state it
// covers, a restart replays exactly the entries after it: nothing twice,
// nothing lost.
//
// It also wakes the requests waiting for their entries (the Wait registry)
// and the linearizable reads waiting for an applied index. On the member
// that proposed a KV write, the waiter also holds the request and the
// exact bytes proposed, and an entry with those bytes is applied from that
// request instead of being decoded again (docs/adr/0020-*).
package apply
