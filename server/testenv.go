package server

// EnvRetainRaftLog, set to "1" in a member's environment, makes it keep a
// copy of every Raft log entry that --snapshot-count compaction trims
// (raftlog.Storage.RetainTrimmed), so that the robustness suite
// (tests/robustness) can read every persisted request from the data dir of
// the stopped member, as etcd's suite reads its never-trimmed WAL. Test
// only: the copy doubles the log's disk use and is never trimmed.
const EnvRetainRaftLog = "METASTORE_TEST_RETAIN_RAFT_LOG"
