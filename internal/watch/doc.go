// Package watch fans committed MVCC events out to etcd watchers.
//
// The apply goroutine hands every committed revision to Hub.Notify, which only
// appends it to a pending list and returns: apply never waits for watchers.
// A dispatcher goroutine moves pending revisions to the synced watchers (those
// that have seen everything up to the hub's revision) through a bounded
// per-stream queue. A watcher whose stream queue is full, or whose start
// revision is in the past, is unsynced: it remembers only the next revision it
// needs, and a catch-up goroutine replays it from the store's revision-ordered
// history (History.Events) whenever its stream has room, until it reaches the
// hub's revision and rejoins the synced group. Memory is therefore bounded by
// the stream queues, never by how far a watcher lags, and a slow reader can
// neither block writes nor other watchers nor lose events: if history below its
// next revision was compacted it is cancelled with the compact revision
// instead (etcd #17529 lost events here).
//
// With no watcher at all, Notify only records the revision (no queueing, no
// wake-up): a put costs the hub nothing when nobody watches.
//
// Events arrive with PrevKv only when the store had the previous value at
// hand; for a watcher that asked for prev_kv, Stream.Next reads the missing
// ones from the store at mod_revision-1 when it sends them, and omits them
// once that revision is compacted, as etcd does
// (docs/adr/0019-prev-kv-read-at-send.md).
//
// The package is transport-neutral: Stream yields Response values in the
// order they must be sent; internal/rpc turns them into gRPC messages.
package watch
