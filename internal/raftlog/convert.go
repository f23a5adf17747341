package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/metastore/metastore/internal/raftwal"
	"github.com/metastore/metastore/internal/storage"
)

// convertChunk is how many entries one Save of the conversion writes.
const convertChunk = 1024

// convert moves a log kept in the engine's keys (r/e/ and r/h: every data
// dir written before docs/adr/0026-raft-log-in-its-own-files.md, and the
// ones a restore or an etcd migration writes) into segment files in dir,
// once. The files are written into a scratch directory, synced and renamed
// into place; only then are the keys deleted and the engine marked
// (storage.KeyRaftLogFiles) in one synced batch. A crash before the rename
// leaves the keys, and the next start converts again; a crash after it
// leaves the files and the keys, which hold the same log, and the next
// start only deletes the keys. Once marked, a dir without its segment files
// is refused: starting on an empty log would lose acknowledged writes.
func convert(eng storage.Engine, fs vfs.FS, dir string, noSync bool) error {
	_, err := eng.Get(storage.KeyRaftLogFiles)
	marked := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("raftlog: read the log's format mark: %w", err)
	}
	exists, err := raftwal.Exists(fs, dir)
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	if marked {
		if !exists {
			return fmt.Errorf("raftlog: the Raft log's segment files are missing from %s, where this data dir's log was written", dir)
		}
		return nil
	}
	if !exists {
		if err := copyKeysToSegments(eng, fs, dir, noSync); err != nil {
			return err
		}
	}
	b := eng.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(storage.PrefixRaftEntry, storage.PrefixEnd(storage.PrefixRaftEntry)); err != nil {
		return fmt.Errorf("raftlog: drop the engine's log entries: %w", err)
	}
	if err := b.Delete(storage.KeyRaftHardState); err != nil {
		return fmt.Errorf("raftlog: drop the engine's hard state: %w", err)
	}
	if err := b.Set(storage.KeyRaftLogFiles, nil); err != nil {
		return fmt.Errorf("raftlog: mark the log's format: %w", err)
	}
	if err := b.Commit(!noSync); err != nil {
		return fmt.Errorf("raftlog: commit the log's conversion: %w", err)
	}
	return nil
}

// copyKeysToSegments writes the log held in the engine's keys into new
// segment files at dir (through a scratch directory renamed into place).
func copyKeysToSegments(eng storage.Engine, fs vfs.FS, dir string, noSync bool) error {
	hs, err := ReadHardState(eng)
	if err != nil {
		return err
	}
	md, err := readSnapshotMetadata(eng)
	if err != nil {
		return err
	}
	tmp := dir + ".tmp"
	if err := fs.RemoveAll(tmp); err != nil {
		return fmt.Errorf("raftlog: clear %s: %w", tmp, err)
	}
	w, err := raftwal.Open(fs, tmp, raftwal.Options{NoSync: noSync})
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	werr := func() error {
		if md.GetIndex() > 0 {
			if err := w.Reset(md.GetIndex(), md.GetTerm(), hs); err != nil {
				return err
			}
		}
		it, err := eng.NewIter(storage.IterOptions{
			LowerBound: storage.RaftEntryKey(md.GetIndex() + 1),
			UpperBound: storage.PrefixEnd(storage.PrefixRaftEntry),
		})
		if err != nil {
			return fmt.Errorf("raftlog: open iterator: %w", err)
		}
		defer it.Close()
		next := md.GetIndex() + 1
		var chunk []*raftpb.Entry
		for ok := it.First(); ok; ok = it.Next() {
			idx := binary.BigEndian.Uint64(it.Key()[len(storage.PrefixRaftEntry):])
			if idx != next {
				return fmt.Errorf("%w: log gap: expected index %d, found %d", ErrCorrupt, next, idx)
			}
			e, err := decodeEntry(it.Key(), it.Value(), idx)
			if err != nil {
				return err
			}
			chunk = append(chunk, e)
			if len(chunk) == convertChunk {
				if err := w.Save(nil, chunk, false); err != nil {
					return err
				}
				chunk = chunk[:0]
			}
			next++
		}
		if err := it.Error(); err != nil {
			return fmt.Errorf("raftlog: scan log: %w", err)
		}
		// The last write carries the HardState and makes everything
		// durable.
		return w.Save(hs, chunk, true)
	}()
	if err := errors.Join(werr, w.Close()); err != nil {
		return fmt.Errorf("raftlog: copy the log into segment files: %w", err)
	}
	if err := fs.Rename(tmp, dir); err != nil {
		return fmt.Errorf("raftlog: move %s into place: %w", tmp, err)
	}
	if noSync {
		return nil
	}
	d, err := fs.OpenDir(fs.PathDir(dir))
	if err != nil {
		return fmt.Errorf("raftlog: open %s: %w", fs.PathDir(dir), err)
	}
	if err := errors.Join(d.Sync(), d.Close()); err != nil {
		return fmt.Errorf("raftlog: sync %s: %w", fs.PathDir(dir), err)
	}
	return nil
}
