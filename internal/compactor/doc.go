// Package compactor runs etcd's automatic compaction
// (--auto-compaction-mode, --auto-compaction-retention) on the leader:
// periodic mode keeps a window of history by time, revision mode keeps the
// last N revisions. It only decides which revision to compact; the
// compaction itself is an ordinary Raft proposal, so every member compacts
// at the same log position.
package compactor
