// Package raftlog implements raft.Storage (go.etcd.io/raft/v3) on the
// storage engine: log entries, the HardState, the ConfState and the
// metadata of the last log compaction.
//
// The log lives in the same engine as the state machine so that one synced
// engine commit makes both the new entries and every earlier unsynced
// state-machine batch durable: one fsync per Raft Ready. Every record is
// framed with a CRC32-C so that a flipped bit on disk is reported with the
// key it was found at instead of being replayed into the state machine.
package raftlog
