package raftsnap

import (
	"fmt"

	"github.com/metastore/metastore/internal/storage"
)

// Versions before installation by ingestion staged an image as ordinary
// keys under s/ and copied them over the live spans at installation. A
// data dir such a version left with its installation marker written is
// completed the way that version would have (replaceLiveFromLegacyStaging);
// any other leftover staging is dropped. Nothing writes s/ any more.

// hasLegacyStaging reports whether an interrupted installation must be
// completed from s/: the staging directory has no image and s/ has keys.
func hasLegacyStaging(eng storage.Engine, dir string) (bool, error) {
	files, err := stagedFiles(dir)
	if err != nil || len(files) > 0 {
		return false, err
	}
	it, err := eng.NewIter(storage.IterOptions{LowerBound: storage.PrefixSnapStaging, UpperBound: storage.PrefixEnd(storage.PrefixSnapStaging)})
	if err != nil {
		return false, fmt.Errorf("raftsnap: open staging iterator: %w", err)
	}
	defer it.Close()
	found := it.First()
	if err := it.Error(); err != nil {
		return false, fmt.Errorf("raftsnap: scan staging: %w", err)
	}
	return found, nil
}

func clearLegacyStaging(eng storage.Engine) error {
	b := eng.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(storage.PrefixSnapStaging, storage.PrefixEnd(storage.PrefixSnapStaging)); err != nil {
		return err
	}
	if err := b.Commit(false); err != nil {
		return fmt.Errorf("raftsnap: clear staging: %w", err)
	}
	return nil
}

// legacyBatchBytes is how much an installation batch holds before it is
// committed, which bounds memory whatever the size of the image.
const legacyBatchBytes = 4 << 20

// replaceLiveFromLegacyStaging deletes the replicated state and copies the
// s/ staging in its place. It is idempotent: the staging stays until
// finishBatch.
func replaceLiveFromLegacyStaging(eng storage.Engine) error {
	b := eng.NewBatch()
	defer func() { b.Close() }()
	for _, sp := range replicatedSpans() {
		if err := b.DeleteRange(sp.start, spanEnd(sp)); err != nil {
			return err
		}
	}
	it, err := eng.NewIter(storage.IterOptions{LowerBound: storage.PrefixSnapStaging, UpperBound: storage.PrefixEnd(storage.PrefixSnapStaging)})
	if err != nil {
		return fmt.Errorf("raftsnap: open staging iterator: %w", err)
	}
	defer it.Close()
	pending := 0
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[len(storage.PrefixSnapStaging):]
		if err := b.Set(k, it.Value()); err != nil {
			return err
		}
		pending += len(k) + len(it.Value())
		if pending >= legacyBatchBytes {
			if err := b.Commit(false); err != nil {
				return fmt.Errorf("raftsnap: commit installation: %w", err)
			}
			b.Close()
			b = eng.NewBatch()
			pending = 0
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("raftsnap: scan staging: %w", err)
	}
	if err := b.Commit(false); err != nil {
		return fmt.Errorf("raftsnap: commit installation: %w", err)
	}
	return nil
}
