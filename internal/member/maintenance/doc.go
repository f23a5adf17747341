// Package maintenance is a member's backend of etcd's Maintenance service
// (rpc.MaintenanceBackend and rpc.Downgrader): Status from
// internal/member/status, Hash and HashKV from the MVCC store, alarms
// through Raft (so that every member has the same alarms, as in etcd),
// MoveLeader through internal/member/leadership, Snapshot as an etcd
// backend file of a point-in-time engine snapshot (internal/snapshot), and
// Downgrade through internal/downgrade, and Defragment as a compaction of
// the whole engine (storage.Engine.CompactAll), online, one at a time,
// with the gRPC health status at NOT_SERVING meanwhile when
// StopGRPCServiceOnDefrag is on. Its only state is Defragment's turn: each
// call goes to the component that owns the answer.
package maintenance
