package raftlog

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/raftwal"
	"github.com/metastore/metastore/internal/storage"
)

// Tail cache bounds: the entries most recently appended are what raft asks
// for when it hands committed entries to apply, so keeping a short tail in
// memory saves a file read and a decode per entry on the hot path.
const (
	maxCacheEntries = 4096
	maxCacheBytes   = 16 << 20
)

// SegmentHost is what an engine offers the Raft log: the file system and
// directory its segment files live in (beside the engine's own files, so
// that the crash tests' file system covers both), and whether fsync is off
// (--unsafe-no-fsync). Both engines implement it.
type SegmentHost interface {
	RaftLogDir() (fs vfs.FS, dir string, noSync bool)
}

// Storage is raft.Storage on segment files (internal/raftwal), with the
// ConfState and the state machine's snapshot point in the engine. Its
// methods are safe for concurrent use: raft calls them from its goroutine
// while the Ready loop appends and the apply loop compacts.
type Storage struct {
	eng    storage.Engine
	wal    *raftwal.Log
	noSync bool

	mu        sync.RWMutex // guards every field below
	hs        *raftpb.HardState
	cs        *raftpb.ConfState
	cache     []*raftpb.Entry // contiguous tail of the log ending at its last index
	cacheSize int
	retain    bool // tests only: Compact archives what it trims (archive.go)
}

var _ raft.Storage = (*Storage)(nil)

// Open opens the log of the engine eng: its segment files, which are
// created from the engine's keys the first time (a data dir written before
// the log left the engine, or by a restore), and the ConfState. A snapshot
// installation that reached the engine but not the log (a crash between
// the two) is finished here. Every record's checksum is checked, so that
// corruption is found at start, not at replay.
func Open(eng storage.Engine) (*Storage, error) {
	host, ok := eng.(SegmentHost)
	if !ok {
		return nil, fmt.Errorf("raftlog: engine %T has no directory for the Raft log", eng)
	}
	fs, dir, noSync := host.RaftLogDir()
	if err := convert(eng, fs, dir, noSync); err != nil {
		return nil, err
	}
	wal, err := raftwal.Open(fs, dir, raftwal.Options{NoSync: noSync})
	if err != nil {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	s := &Storage{eng: eng, wal: wal, noSync: noSync, cs: &raftpb.ConfState{}}
	fail := func(err error) (*Storage, error) {
		_ = wal.Close()
		return nil, err
	}
	if v, err := eng.Get(storage.KeyRaftConfState); err == nil {
		if err := decodeProto(storage.KeyRaftConfState, v, s.cs); err != nil {
			return fail(err)
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return fail(fmt.Errorf("raftlog: read conf state: %w", err))
	}
	// The engine's snapshot point moves only when a leader's snapshot is
	// installed, and that installation resets the log after the engine
	// holds the image: a log behind it was cut off by a crash in between.
	md, err := readSnapshotMetadata(eng)
	if err != nil {
		return fail(err)
	}
	if ci, _ := wal.Compacted(); md.GetIndex() > ci {
		if err := wal.Reset(md.GetIndex(), md.GetTerm(), raisedCommit(wal.HardState(), md.GetIndex())); err != nil {
			return fail(fmt.Errorf("raftlog: finish snapshot %d: %w", md.GetIndex(), err))
		}
	}
	// Entries at or below the compaction point were applied, so
	// committed, but the HardState that said so may be older than the
	// compaction (or than the fast path's applied index, ADR 16): raft
	// refuses to start with a commit index below it.
	ci, _ := wal.Compacted()
	s.hs = raisedCommit(wal.HardState(), ci)
	return s, nil
}

func raisedCommit(hs *raftpb.HardState, index uint64) *raftpb.HardState {
	h := proto.Clone(hs).(*raftpb.HardState)
	if h.GetCommit() < index {
		h.Commit = proto.Uint64(index)
	}
	return h
}

// readSnapshotMetadata returns the engine's snapshot point (empty if none).
func readSnapshotMetadata(r storage.Reader) (*raftpb.SnapshotMetadata, error) {
	md := &raftpb.SnapshotMetadata{}
	v, err := r.Get(storage.KeyRaftSnapshot)
	if errors.Is(err, storage.ErrNotFound) {
		return md, nil
	}
	if err != nil {
		return nil, fmt.Errorf("raftlog: read snapshot metadata: %w", err)
	}
	if err := decodeProto(storage.KeyRaftSnapshot, v, md); err != nil {
		return nil, err
	}
	return md, nil
}

// Close closes the segment files. The Storage must not be used after.
func (s *Storage) Close() error {
	if err := s.wal.Close(); err != nil {
		return fmt.Errorf("raftlog: close: %w", err)
	}
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
func (s *Storage) FirstIndex() (uint64, error) { return s.wal.FirstIndex(), nil }

// LastIndex implements raft.Storage.
func (s *Storage) LastIndex() (uint64, error) { return s.wal.LastIndex(), nil }

// Term implements raft.Storage.
func (s *Storage) Term(i uint64) (uint64, error) {
	s.mu.RLock()
	e := s.cached(i)
	s.mu.RUnlock()
	if e != nil {
		return e.GetTerm(), nil
	}
	return s.wal.Term(i)
}

// Entries implements raft.Storage: the newest part from the cache, any
// older part from the segment files.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	s.mu.RLock()
	cf := s.cacheFirst()
	cl := cf + uint64(len(s.cache)) // one past the cache's last index
	if cf != 0 && lo >= cf && hi <= cl {
		out := make([]*raftpb.Entry, 0, min(hi-lo, 1024))
		var size uint64
		for i := lo; i < hi; i++ {
			e := s.cache[i-cf]
			sz := uint64(len(e.Data)) + 16
			if len(out) > 0 && size+sz > maxSize {
				break
			}
			size += sz
			out = append(out, e)
		}
		s.mu.RUnlock()
		if fi := s.wal.FirstIndex(); lo < fi {
			// Compacted meanwhile: the cache may still hold it, raft
			// must not get it.
			return nil, raft.ErrCompacted
		}
		return out, nil
	}
	s.mu.RUnlock()
	return s.wal.Entries(lo, hi, maxSize)
}

// Snapshot implements raft.Storage. The state machine is the engine itself,
// so the metadata of the compaction point is all a single member needs;
// shipping state to a follower that fell behind it is the transport's job.
func (s *Storage) Snapshot() (*raftpb.Snapshot, error) {
	index, term := s.wal.Compacted()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index:     proto.Uint64(index),
		Term:      proto.Uint64(term),
		ConfState: proto.Clone(s.cs).(*raftpb.ConfState),
	}}, nil
}

// Save appends entries (replacing any conflicting suffix) and records hs.
// With sync, it returns once both are durable: this is the point after
// which raft may count the entries as persisted. The entries are written
// and synced by the calling goroutine itself, in one write.
func (s *Storage) Save(hs *raftpb.HardState, ents []*raftpb.Entry, sync bool) error {
	if raft.IsEmptyHardState(hs) && len(ents) == 0 {
		return nil
	}
	if len(ents) > 0 {
		if first, last := ents[0].GetIndex(), s.wal.LastIndex(); first > last+1 {
			return fmt.Errorf("raftlog: append at %d leaves a gap after last index %d", first, last)
		}
	}
	if err := s.wal.Save(hs, ents, sync); err != nil {
		return fmt.Errorf("raftlog: save: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !raft.IsEmptyHardState(hs) {
		s.hs = proto.Clone(hs).(*raftpb.HardState)
	}
	if len(ents) > 0 {
		s.appendCache(ents)
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
// The state machine is not synced with each apply (its batches become
// durable when the engine next syncs or flushes), so the entries that
// rebuild it after a crash must outlive it: the engine is synced first, and
// only then may the log let go of the entries.
func (s *Storage) Compact(index uint64) error {
	if ci, _ := s.wal.Compacted(); index <= ci {
		return nil // a snapshot was installed meanwhile, or compacted already
	}
	if last := s.wal.LastIndex(); index > last {
		return fmt.Errorf("raftlog: compact %d is beyond last index %d", index, last)
	}
	s.mu.RLock()
	retain := s.retain
	s.mu.RUnlock()
	if retain {
		if err := s.archive(index); err != nil {
			return err
		}
	}
	// A synced write, not only a sync: the engine records how far its
	// synced writes reached and refuses to open having recovered less
	// (internal/storage/pebble/syncmark.go), so the state up to index can
	// never be silently lost once the entries that rebuild it are gone.
	b := s.eng.NewBatch()
	defer b.Close()
	if err := b.Set(storage.KeyRaftLogFiles, nil); err != nil {
		return fmt.Errorf("raftlog: stage the sync before compacting the log at %d: %w", index, err)
	}
	if err := b.Commit(!s.noSync); err != nil {
		return fmt.Errorf("raftlog: sync the state machine before compacting the log at %d: %w", index, err)
	}
	if err := s.wal.Compact(index); err != nil {
		return fmt.Errorf("raftlog: compact at %d: %w", index, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
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
// caller filled with the rest of the installation) the snapshot metadata
// and md's ConfState and commits b synced; then the log is reset to empty
// at md.Index with a HardState whose commit index is at least md.Index:
// raft appends from md.Index+1. A crash between the two is finished by
// Open, which finds the engine's snapshot point ahead of the log.
func (s *Storage) InstallSnapshot(b storage.Batch, md *raftpb.SnapshotMetadata) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := StageSnapshotMetadata(b, md); err != nil {
		return err
	}
	if err := b.Commit(true); err != nil {
		return fmt.Errorf("raftlog: commit snapshot %d: %w", md.GetIndex(), err)
	}
	hs := raisedCommit(s.hs, md.GetIndex())
	if err := s.wal.Reset(md.GetIndex(), md.GetTerm(), hs); err != nil {
		return fmt.Errorf("raftlog: reset the log to snapshot %d: %w", md.GetIndex(), err)
	}
	s.hs = hs
	s.cache, s.cacheSize = nil, 0
	if cs := md.GetConfState(); cs != nil {
		s.cs = proto.Clone(cs).(*raftpb.ConfState)
	} else {
		s.cs = &raftpb.ConfState{}
	}
	return nil
}

// StageSnapshotMetadata stages into b what InstallSnapshot records in the
// engine: md as the state machine's snapshot point and its ConfState. It is
// also used to finish an installation interrupted by a crash, before Open
// (which then resets the log to md).
func StageSnapshotMetadata(b storage.Batch, md *raftpb.SnapshotMetadata) error {
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
	return StageConfState(b, cs)
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
