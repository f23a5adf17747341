package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

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

// archive copies the live entries up to index into the archive, in an
// unsynced batch: Compact syncs the engine before it trims them.
func (s *Storage) archive(index uint64) error {
	b := s.eng.NewBatch()
	defer b.Close()
	for lo := s.wal.FirstIndex(); lo <= index; {
		ents, err := s.wal.Entries(lo, index+1, 4<<20)
		if err != nil {
			return fmt.Errorf("raftlog: archive: read entries from %d: %w", lo, err)
		}
		for _, e := range ents {
			if err := b.Set(archiveKey(e.GetIndex()), encodeEntry(e)); err != nil {
				return fmt.Errorf("raftlog: archive entry %d: %w", e.GetIndex(), err)
			}
		}
		lo += uint64(len(ents))
	}
	if err := b.Commit(false); err != nil {
		return fmt.Errorf("raftlog: archive: commit: %w", err)
	}
	return nil
}

// ReadPersisted returns the HardState and every entry eng's member
// persisted, archived (see RetainTrimmed) then live, in index order; a live
// entry replaces an archived one at the same index. Every checksum is
// verified. It is meant for the data dir of a stopped member.
func ReadPersisted(eng storage.Engine) (*raftpb.HardState, []*raftpb.Entry, error) {
	s, err := Open(eng)
	if err != nil {
		return nil, nil, err
	}
	defer s.Close()
	var ents []*raftpb.Entry
	it, err := eng.NewIter(storage.IterOptions{LowerBound: prefixArchive, UpperBound: storage.PrefixEnd(prefixArchive)})
	if err != nil {
		return nil, nil, fmt.Errorf("raftlog: open iterator: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		idx := binary.BigEndian.Uint64(it.Key()[len(prefixArchive):])
		e, err := decodeEntry(it.Key(), it.Value(), idx)
		if err != nil {
			_ = it.Close()
			return nil, nil, err
		}
		ents = append(ents, e)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, nil, fmt.Errorf("raftlog: scan %q: %w", prefixArchive, err)
	}
	first, last := s.wal.FirstIndex(), s.wal.LastIndex()
	var live []*raftpb.Entry
	if last >= first {
		if live, err = s.wal.Entries(first, last+1, math.MaxUint64); err != nil {
			return nil, nil, fmt.Errorf("raftlog: read the live log: %w", err)
		}
	}
	// The live log supersedes archived entries at or after its first index.
	if len(live) > 0 {
		i := len(ents)
		for i > 0 && ents[i-1].GetIndex() >= live[0].GetIndex() {
			i--
		}
		ents = append(ents[:i], live...)
	}
	return s.HardState(), ents, nil
}
