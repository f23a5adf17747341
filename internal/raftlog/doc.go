// Package raftlog implements raft.Storage (go.etcd.io/raft/v3): log
// entries and the HardState in segment files (internal/raftwal), the
// ConfState and the state machine's snapshot point in the storage engine.
//
// The log lives outside the engine (docs/adr/0026-raft-log-in-its-own-files.md)
// so that a write's entry is written and synced once, by the Ready loop
// itself, and never enters the LSM to be flushed and compacted away. The
// state machine's batches are not synced; after a crash they are rebuilt
// from the log, so the log lets go of entries only once the engine has
// synced past them (Compact). Data dirs that still hold the log in the
// engine's keys are converted at Open.
package raftlog
