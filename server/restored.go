package server

import (
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/storage"
)

// compactRestoredLog runs once the member serves. A data dir written by
// `metastore snapshot restore` holds state that no Raft entry produced
// (storage.KeyRestored marks it), so a member added later must receive it
// as a Raft snapshot, never by replaying the log from index 1, which would
// leave it without the restored data. Compacting the log up to the applied
// index (the bootstrap entries) makes the leader send one. Redone after a
// crash until the mark is removed: compacting twice is a no-op.
func (s *Server) compactRestoredLog() error {
	if _, err := s.eng.Get(storage.KeyRestored); errors.Is(err, storage.ErrNotFound) {
		return nil
	} else if err != nil {
		return fmt.Errorf("server: read the restore mark: %w", err)
	}
	applied := s.applier.AppliedIndex()
	if err := s.raftLog.Compact(applied); err != nil {
		return fmt.Errorf("server: compact the Raft log of a restored data dir at %d: %w", applied, err)
	}
	b := s.eng.NewBatch()
	defer b.Close()
	if err := b.Delete(storage.KeyRestored); err != nil {
		return fmt.Errorf("server: clear the restore mark: %w", err)
	}
	if err := b.Commit(true); err != nil {
		return fmt.Errorf("server: clear the restore mark: %w", err)
	}
	s.lg.Info("restored data dir: Raft log compacted so that members added later receive the restored state as a snapshot",
		zap.Uint64("index", applied))
	return nil
}
