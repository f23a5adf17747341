package apply

import "go.etcd.io/raft/v3/raftpb"

// InstallSnapshot installs the snapshot raft handed over, exactly as Run
// does for an Apply that carries one. It is for a caller that drives raft
// itself and applies synchronously (internal/simcluster); the same
// goroutine rule holds: never concurrently with ApplyEntries.
func (a *Applier) InstallSnapshot(md *raftpb.SnapshotMetadata) error {
	return a.installSnapshot(md)
}
