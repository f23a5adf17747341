package bootstrap

import (
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/storage"
)

// LogCompactor is the Raft log.
type LogCompactor interface {
	Compact(index uint64) error
	LastIndex() (uint64, error)
}

// CompactRestoredLog runs once the member serves. A data dir written by
// `metastore snapshot restore` holds state that no Raft entry produced
// (storage.KeyRestored marks it), so a member added later must receive it
// as a Raft snapshot, never by replaying the log from index 1, which would
// leave it without the restored data. Compacting the log up to the applied
// index (the bootstrap entries) makes the leader send one. Redone after a
// crash until the mark is removed: compacting twice is a no-op. It reports
// whether the data dir was a restored one.
//
// The compaction point is the lower of applied and the log's last index:
// the node hands a Ready's committed entries to the apply loop before it
// persists that Ready's entries (internal/raftnode/node.go), so a follower
// can have applied an entry its log does not hold yet. Any point past the
// bootstrap entries makes the leader send a snapshot.
func CompactRestoredLog(eng storage.Engine, log LogCompactor, applied uint64, lg *zap.Logger) (bool, error) {
	if _, err := eng.Get(storage.KeyRestored); errors.Is(err, storage.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("bootstrap: read the restore mark: %w", err)
	}
	last, err := log.LastIndex()
	if err != nil {
		return false, fmt.Errorf("bootstrap: last index of the Raft log of a restored data dir: %w", err)
	}
	index := min(applied, last)
	if index == 0 {
		// Nothing to compact yet; the mark stays for the next start.
		lg.Warn("restored data dir: Raft log empty, compaction left for the next start", zap.Uint64("applied", applied))
		return false, nil
	}
	if err := log.Compact(index); err != nil {
		return false, fmt.Errorf("bootstrap: compact the Raft log of a restored data dir at %d: %w", index, err)
	}
	b := eng.NewBatch()
	defer b.Close()
	if err := b.Delete(storage.KeyRestored); err != nil {
		return false, fmt.Errorf("bootstrap: clear the restore mark: %w", err)
	}
	if err := b.Commit(true); err != nil {
		return false, fmt.Errorf("bootstrap: clear the restore mark: %w", err)
	}
	lg.Info("restored data dir: Raft log compacted so that members added later receive the restored state as a snapshot",
		zap.Uint64("index", index))
	return true, nil
}
