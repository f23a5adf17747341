package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/metastore/metastore/internal/storage"
)

// prefixArchive holds, for the robustness tests only, copies of the entries
// that log compaction trimmed: r/a/<index:8 BE>, framed like r/e/. It sits
// under storage.PrefixRaft, so it is never part of a snapshot sent to
// another member and never read by raft.
var prefixArchive = []byte("r/a/")

func archiveKey(index uint64) []byte {
	k := make([]byte, len(prefixArchive)+8)
	copy(k, prefixArchive)
	binary.BigEndian.PutUint64(k[len(prefixArchive):], index)
	return k
}

// RetainTrimmed makes every later Compact copy the entries it trims into
// an archive that ReadPersisted returns, so that a test can read every
// request a member ever persisted after it stopped (the robustness suite
// replays them, as etcd's replays its never-trimmed WAL). It costs a second
// copy of the whole log on disk: tests only.
func (s *Storage) RetainTrimmed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retain = true
}

// stageArchive copies the live entries [lo, hi] into the archive in b.
func (s *Storage) stageArchive(b storage.Batch, lo, hi uint64) error {
	it, err := s.eng.NewIter(storage.IterOptions{LowerBound: storage.RaftEntryKey(lo), UpperBound: storage.RaftEntryKey(hi + 1)})
	if err != nil {
		return fmt.Errorf("raftlog: archive: open iterator: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		idx := binary.BigEndian.Uint64(it.Key()[len(storage.PrefixRaftEntry):])
		if err := b.Set(archiveKey(idx), append([]byte(nil), it.Value()...)); err != nil {
			return fmt.Errorf("raftlog: archive entry %d: %w", idx, err)
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("raftlog: archive: scan log: %w", err)
	}
	return nil
}

// ReadPersisted returns the HardState and every entry r holds, archived
// (see RetainTrimmed) then live, in index order; a live entry replaces an
// archived one at the same index. Every checksum is verified. It is meant
// for the data dir of a stopped member.
func ReadPersisted(r storage.Reader) (*raftpb.HardState, []*raftpb.Entry, error) {
	hs, err := ReadHardState(r)
	if err != nil {
		return nil, nil, err
	}
	var ents []*raftpb.Entry
	for _, prefix := range [][]byte{prefixArchive, storage.PrefixRaftEntry} {
		it, err := r.NewIter(storage.IterOptions{LowerBound: prefix, UpperBound: storage.PrefixEnd(prefix)})
		if err != nil {
			return nil, nil, fmt.Errorf("raftlog: open iterator: %w", err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			idx := binary.BigEndian.Uint64(it.Key()[len(prefix):])
			e, err := decodeEntry(it.Key(), it.Value(), idx)
			if err != nil {
				_ = it.Close()
				return nil, nil, err
			}
			// The live log, read second, supersedes archived entries at or
			// after its first index.
			i := len(ents)
			for i > 0 && ents[i-1].GetIndex() >= idx {
				i--
			}
			ents = append(ents[:i], e)
		}
		err = errors.Join(it.Error(), it.Close())
		if err != nil {
			return nil, nil, fmt.Errorf("raftlog: scan %q: %w", prefix, err)
		}
	}
	return hs, ents, nil
}
