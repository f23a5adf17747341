package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
)

// Tail cache bounds: the entries most recently appended are what raft asks
// for when it hands committed entries to apply, so keeping a short tail in
// memory saves an engine read per entry on the hot path.
const (
	maxCacheEntries = 4096
	maxCacheBytes   = 16 << 20
)

// Storage is raft.Storage on a storage.Engine. Its methods are safe for
// concurrent use: raft calls them from its goroutine while the Ready loop
// appends.
type Storage struct {
	eng storage.Engine

	mu        sync.RWMutex // guards every field below
	hs        *raftpb.HardState
	cs        *raftpb.ConfState
	snapIndex uint64 // entries at or below snapIndex were compacted away
	snapTerm  uint64
	last      uint64
	cache     []*raftpb.Entry // contiguous tail of the log ending at last
	cacheSize int
	retain    bool // tests only: Compact archives what it trims (archive.go)
}

var _ raft.Storage = (*Storage)(nil)

// Open loads the log's state from eng, checking the checksum of every
// record it reads, so that corruption is found at start, not at replay.
func Open(eng storage.Engine) (*Storage, error) {
	s := &Storage{eng: eng, hs: &raftpb.HardState{}, cs: &raftpb.ConfState{}}
	if v, err := eng.Get(storage.KeyRaftHardState); err == nil {
		if err := decodeProto(storage.KeyRaftHardState, v, s.hs); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("raftlog: read hard state: %w", err)
	}
	if v, err := eng.Get(storage.KeyRaftConfState); err == nil {
		if err := decodeProto(storage.KeyRaftConfState, v, s.cs); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("raftlog: read conf state: %w", err)
	}
	if v, err := eng.Get(storage.KeyRaftSnapshot); err == nil {
		var md raftpb.SnapshotMetadata
		if err := decodeProto(storage.KeyRaftSnapshot, v, &md); err != nil {
			return nil, err
		}
		s.snapIndex, s.snapTerm = md.GetIndex(), md.GetTerm()
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("raftlog: read snapshot metadata: %w", err)
	}
	// Entries at or below the compaction point were applied, so
	// committed, but the HardState that said so is written unsynced and may
	// be older than the compaction (or than the fast path's applied index,
	// ADR 16): raft refuses to start with a commit index below it.
	if s.hs.GetCommit() < s.snapIndex {
		s.hs.Commit = proto.Uint64(s.snapIndex)
	}
	s.last = s.snapIndex
	if err := s.verify(); err != nil {
		return nil, err
	}
	return s, nil
}

// verify walks the whole retained log: every checksum must match and the
// indexes must be contiguous from the compaction point.
func (s *Storage) verify() error {
	it, err := s.eng.NewIter(storage.IterOptions{
		LowerBound: storage.RaftEntryKey(s.snapIndex + 1),
		UpperBound: storage.PrefixEnd(storage.PrefixRaftEntry),
	})
	if err != nil {
		return fmt.Errorf("raftlog: open iterator: %w", err)
	}
	defer it.Close()
	next := s.snapIndex + 1
	for ok := it.First(); ok; ok = it.Next() {
		idx := binary.BigEndian.Uint64(it.Key()[len(storage.PrefixRaftEntry):])
		if idx != next {
			return fmt.Errorf("%w: log gap: expected index %d, found %d", ErrCorrupt, next, idx)
		}
		if _, err := decodeEntry(it.Key(), it.Value(), idx); err != nil {
			return err
		}
		next++
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("raftlog: scan log: %w", err)
	}
	s.last = next - 1
	return nil
}

// InitialState implements raft.Storage.
func (s *Storage) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return proto.Clone(s.hs).(*raftpb.HardState), proto.Clone(s.cs).(*raftpb.ConfState), nil
}

// HardState returns the last saved HardState.
func (s *Storage) HardState() *raftpb.HardState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return proto.Clone(s.hs).(*raftpb.HardState)
}

// ConfState returns the ConfState as of the last applied conf change.
func (s *Storage) ConfState() *raftpb.ConfState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return proto.Clone(s.cs).(*raftpb.ConfState)
}

// FirstIndex implements raft.Storage.
func (s *Storage) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.snapIndex + 1, nil
}

// LastIndex implements raft.Storage.
func (s *Storage) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last, nil
}

// Term implements raft.Storage.
func (s *Storage) Term(i uint64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case i == s.snapIndex:
		return s.snapTerm, nil
	case i < s.snapIndex:
		return 0, raft.ErrCompacted
	case i > s.last:
		return 0, raft.ErrUnavailable
	}
	if e := s.cached(i); e != nil {
		return e.GetTerm(), nil
	}
	e, err := s.readEntry(i)
	if err != nil {
		return 0, err
	}
	return e.GetTerm(), nil
}

// Entries implements raft.Storage.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if lo <= s.snapIndex {
		return nil, raft.ErrCompacted
	}
	if hi > s.last+1 {
		return nil, raft.ErrUnavailable
	}
	if lo >= hi {
		return nil, nil
	}
	out := make([]*raftpb.Entry, 0, min(hi-lo, 1024))
	var size uint64
	add := func(e *raftpb.Entry) bool {
		sz := uint64(len(e.Data)) + 16
		if len(out) > 0 && size+sz > maxSize {
			return false
		}
		size += sz
		out = append(out, e)
		return true
	}
	i := lo
	// Older part from the engine, newer part from the cache.
	if cf := s.cacheFirst(); cf == 0 || lo < cf {
		end := hi
		if cf != 0 && cf < end {
			end = cf
		}
		it, err := s.eng.NewIter(storage.IterOptions{
			LowerBound: storage.RaftEntryKey(lo),
			UpperBound: storage.RaftEntryKey(end),
		})
		if err != nil {
			return nil, fmt.Errorf("raftlog: open iterator: %w", err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			idx := binary.BigEndian.Uint64(it.Key()[len(storage.PrefixRaftEntry):])
			if idx != i {
				it.Close()
				return nil, fmt.Errorf("%w: log gap at index %d (found %d)", ErrCorrupt, i, idx)
			}
			e, err := decodeEntry(it.Key(), it.Value(), idx)
			if err != nil {
				it.Close()
				return nil, err
			}
			if !add(e) {
				it.Close()
				return out, nil
			}
			i++
		}
		err = it.Error()
		it.Close()
		if err != nil {
			return nil, fmt.Errorf("raftlog: read entries: %w", err)
		}
		if i != end {
			return nil, fmt.Errorf("%w: log ends at %d, want entries up to %d", ErrCorrupt, i-1, end-1)
		}
	}
	for ; i < hi; i++ {
		if !add(s.cached(i)) {
			break
		}
	}
	return out, nil
}

// Snapshot implements raft.Storage. The state machine is the engine itself,
// so the metadata of the compaction point is all a single member needs;
// shipping state to a follower that fell behind it is the transport's job.
func (s *Storage) Snapshot() (*raftpb.Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index:     proto.Uint64(s.snapIndex),
		Term:      proto.Uint64(s.snapTerm),
		ConfState: proto.Clone(s.cs).(*raftpb.ConfState),
	}}, nil
}

// Save appends entries (replacing any conflicting suffix) and records hs in
// one engine batch. With sync, it returns once both are durable: this is the
// point after which raft may count the entries as persisted.
func (s *Storage) Save(hs *raftpb.HardState, ents []*raftpb.Entry, sync bool) error {
	if raft.IsEmptyHardState(hs) && len(ents) == 0 {
		return nil
	}
	b := s.eng.NewBatch()
	defer b.Close()
	s.mu.RLock()
	last := s.last
	s.mu.RUnlock()
	if len(ents) > 0 {
		first := ents[0].GetIndex()
		if first > last+1 {
			return fmt.Errorf("raftlog: append at %d leaves a gap after last index %d", first, last)
		}
		if first <= last {
			if err := b.DeleteRange(storage.RaftEntryKey(first), storage.RaftEntryKey(last+1)); err != nil {
				return fmt.Errorf("raftlog: truncate log: %w", err)
			}
		}
		var key, val []byte // reused: the batch copies keys and values
		for _, e := range ents {
			key = storage.AppendRaftEntryKey(key[:0], e.GetIndex())
			val = appendEntry(val[:0], e)
			if err := b.Set(key, val); err != nil {
				return fmt.Errorf("raftlog: stage entry %d: %w", e.GetIndex(), err)
			}
		}
	}
	if !raft.IsEmptyHardState(hs) {
		v, err := encodeProto(hs)
		if err != nil {
			return fmt.Errorf("raftlog: encode hard state: %w", err)
		}
		if err := b.Set(storage.KeyRaftHardState, v); err != nil {
			return fmt.Errorf("raftlog: stage hard state: %w", err)
		}
	}
	if err := b.Commit(sync); err != nil {
		return fmt.Errorf("raftlog: commit: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !raft.IsEmptyHardState(hs) {
		s.hs = proto.Clone(hs).(*raftpb.HardState)
	}
	if len(ents) > 0 {
		s.appendCache(ents)
		s.last = ents[len(ents)-1].GetIndex()
	}
	return nil
}

// StageConfState writes cs into b, the batch that also records the applied
// index of the conf change, so that the two can never disagree after a crash.
// Call SetConfState once b has committed.
func StageConfState(b storage.Batch, cs *raftpb.ConfState) error {
	v, err := encodeProto(cs)
	if err != nil {
		return fmt.Errorf("raftlog: encode conf state: %w", err)
	}
	return b.Set(storage.KeyRaftConfState, v)
}

// SetConfState records cs in memory after StageConfState's batch committed.
func (s *Storage) SetConfState(cs *raftpb.ConfState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cs = proto.Clone(cs).(*raftpb.ConfState)
}

// Compact discards the entries at or below index, which must be applied.
//
// The write lock is held across the engine commit: a reader that saw the
// old compaction point must not open an iterator after the entries below the
// new one are gone, or it would report a gap.
func (s *Storage) Compact(index uint64) error {
	term, err := s.Term(index)
	if err != nil {
		if errors.Is(err, raft.ErrCompacted) {
			return nil
		}
		return fmt.Errorf("raftlog: term of compaction index %d: %w", index, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	snapIndex, last := s.snapIndex, s.last
	if index <= snapIndex {
		return nil // a snapshot was installed meanwhile
	}
	if index > last {
		return fmt.Errorf("raftlog: compact %d is beyond last index %d", index, last)
	}
	md, err := encodeProto(&raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term), ConfState: proto.Clone(s.cs).(*raftpb.ConfState)})
	if err != nil {
		return fmt.Errorf("raftlog: encode snapshot metadata: %w", err)
	}
	b := s.eng.NewBatch()
	defer b.Close()
	if err := b.Set(storage.KeyRaftSnapshot, md); err != nil {
		return err
	}
	if s.retain {
		if err := s.stageArchive(b, snapIndex+1, index); err != nil {
			return err
		}
	}
	if err := b.DeleteRange(storage.RaftEntryKey(snapIndex+1), storage.RaftEntryKey(index+1)); err != nil {
		return err
	}
	// Not synced: losing it after a crash only means the old entries are
	// still there, which is harmless. It cannot outlive the applied index it
	// depends on either: engine commits become durable in order.
	if err := b.Commit(false); err != nil {
		return fmt.Errorf("raftlog: commit compaction: %w", err)
	}
	s.snapIndex, s.snapTerm = index, term
	s.dropCacheThrough(index)
	return nil
}

// dropCacheThrough forgets cached entries at or below index; mu must be held.
func (s *Storage) dropCacheThrough(index uint64) {
	if cf := s.cacheFirst(); cf != 0 && cf <= index {
		drop := int(min(index-cf+1, uint64(len(s.cache))))
		for _, e := range s.cache[:drop] {
			s.cacheSize -= len(e.Data)
		}
		clear(s.cache[:drop]) // see appendCache
		s.cache = s.cache[drop:]
	}
}

// InstallSnapshot makes md the log's compaction point after a snapshot of
// the state machine at md.Index was installed: it stages into b (which the
// caller filled with the rest of the installation) the snapshot metadata,
// md's ConfState, the removal of every log entry and a HardState whose
// commit index is at least md.Index, then commits b synced. The log is
// empty afterwards: raft appends from md.Index+1.
func (s *Storage) InstallSnapshot(b storage.Batch, md *raftpb.SnapshotMetadata) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := StageSnapshotMetadata(b, md, s.hs); err != nil {
		return err
	}
	if err := b.Commit(true); err != nil {
		return fmt.Errorf("raftlog: commit snapshot %d: %w", md.GetIndex(), err)
	}
	s.applySnapshotLocked(md)
	return nil
}

// StageSnapshotMetadata stages what InstallSnapshot records into b, with hs
// as the current HardState (its commit index is raised to md.Index). It is
// also used to finish an installation interrupted by a crash, before Open.
func StageSnapshotMetadata(b storage.Batch, md *raftpb.SnapshotMetadata, hs *raftpb.HardState) error {
	mv, err := encodeProto(md)
	if err != nil {
		return fmt.Errorf("raftlog: encode snapshot metadata: %w", err)
	}
	if err := b.Set(storage.KeyRaftSnapshot, mv); err != nil {
		return err
	}
	cs := md.GetConfState()
	if cs == nil {
		cs = &raftpb.ConfState{}
	}
	if err := StageConfState(b, cs); err != nil {
		return err
	}
	if err := b.DeleteRange(storage.PrefixRaftEntry, storage.PrefixEnd(storage.PrefixRaftEntry)); err != nil {
		return err
	}
	h := proto.Clone(hs).(*raftpb.HardState)
	if h.GetCommit() < md.GetIndex() {
		h.Commit = proto.Uint64(md.GetIndex())
	}
	hv, err := encodeProto(h)
	if err != nil {
		return fmt.Errorf("raftlog: encode hard state: %w", err)
	}
	return b.Set(storage.KeyRaftHardState, hv)
}

// ReadHardState returns the HardState stored in r (empty if none).
func ReadHardState(r storage.Reader) (*raftpb.HardState, error) {
	hs := &raftpb.HardState{}
	v, err := r.Get(storage.KeyRaftHardState)
	if errors.Is(err, storage.ErrNotFound) {
		return hs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("raftlog: read hard state: %w", err)
	}
	if err := decodeProto(storage.KeyRaftHardState, v, hs); err != nil {
		return nil, err
	}
	return hs, nil
}

// ReadConfState returns the ConfState stored in r (empty if none).
func ReadConfState(r storage.Reader) (*raftpb.ConfState, error) {
	cs := &raftpb.ConfState{}
	v, err := r.Get(storage.KeyRaftConfState)
	if errors.Is(err, storage.ErrNotFound) {
		return cs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("raftlog: read conf state: %w", err)
	}
	if err := decodeProto(storage.KeyRaftConfState, v, cs); err != nil {
		return nil, err
	}
	return cs, nil
}

// EncodeMetadata and DecodeMetadata frame snapshot metadata for records
// kept outside the log (the installation marker).
func EncodeMetadata(md *raftpb.SnapshotMetadata) ([]byte, error) { return encodeProto(md) }

// DecodeMetadata parses what EncodeMetadata wrote; key names the record in
// errors.
func DecodeMetadata(key, v []byte) (*raftpb.SnapshotMetadata, error) {
	md := &raftpb.SnapshotMetadata{}
	if err := decodeProto(key, v, md); err != nil {
		return nil, err
	}
	return md, nil
}

func (s *Storage) applySnapshotLocked(md *raftpb.SnapshotMetadata) {
	s.snapIndex, s.snapTerm = md.GetIndex(), md.GetTerm()
	s.last = s.snapIndex
	s.cache, s.cacheSize = nil, 0
	if cs := md.GetConfState(); cs != nil {
		s.cs = proto.Clone(cs).(*raftpb.ConfState)
	} else {
		s.cs = &raftpb.ConfState{}
	}
	if s.hs.GetCommit() < md.GetIndex() {
		s.hs.Commit = proto.Uint64(md.GetIndex())
	}
}

func (s *Storage) readEntry(i uint64) (*raftpb.Entry, error) {
	k := storage.RaftEntryKey(i)
	v, err := s.eng.Get(k)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("%w: entry %d missing below last index %d", ErrCorrupt, i, s.last)
		}
		return nil, fmt.Errorf("raftlog: read entry %d: %w", i, err)
	}
	return decodeEntry(k, v, i)
}

func (s *Storage) cacheFirst() uint64 {
	if len(s.cache) == 0 {
		return 0
	}
	return s.cache[0].GetIndex()
}

func (s *Storage) cached(i uint64) *raftpb.Entry {
	cf := s.cacheFirst()
	if cf == 0 || i < cf || i >= cf+uint64(len(s.cache)) {
		return nil
	}
	return s.cache[i-cf]
}

// appendCache must be called with mu held.
func (s *Storage) appendCache(ents []*raftpb.Entry) {
	first := ents[0].GetIndex()
	cf := s.cacheFirst()
	if cf == 0 || first < cf || first > cf+uint64(len(s.cache)) {
		s.cache, s.cacheSize = nil, 0
	} else {
		keep := int(first - cf)
		for _, e := range s.cache[keep:] {
			s.cacheSize -= len(e.Data)
		}
		s.cache = s.cache[:keep]
	}
	for _, e := range ents {
		s.cache = append(s.cache, e)
		s.cacheSize += len(e.Data)
	}
	drop := 0
	for len(s.cache)-drop > maxCacheEntries || (s.cacheSize > maxCacheBytes && len(s.cache)-drop > 1) {
		s.cacheSize -= len(s.cache[drop].Data)
		drop++
	}
	if drop > 0 {
		// Reslicing instead of copying keeps an append O(1) amortized: the
		// backing array is replaced only when append outgrows it. Cleared
		// slots let the dropped entries be collected before that.
		clear(s.cache[:drop])
		s.cache = s.cache[drop:]
	}
}
