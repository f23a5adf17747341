package raftwal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

const (
	defaultSegmentBytes = 64 << 20
	// defaultZeroAhead is how far past a write the segment is zeroed when
	// the write passes the zeroed part (doc.go, "Zeroing ahead").
	defaultZeroAhead = 1 << 20
	// zeroChunk bounds the buffer of zeros a write of zeros uses.
	zeroChunk = 256 << 10
	// maxReadRun bounds one ReadAt of Entries over adjacent records.
	maxReadRun = 1 << 20
)

var errClosed = errors.New("raftwal: log is closed")

// Options tune a Log.
type Options struct {
	// SegmentBytes is the size at which a segment is sealed and the next
	// one started; 0 means 64 MiB.
	SegmentBytes int64
	// NoSync turns off every fsync (etcd's --unsafe-no-fsync): the log then
	// survives a crash of the process but not of the machine.
	NoSync bool

	// zeroAhead is how far past a write zeros are written; 0 means 1 MiB.
	// Tests make it small so that zeroing happens inside small segments.
	zeroAhead int64
}

// Log is a Raft log in segment files. Its methods are safe for concurrent
// use: the Ready loop saves, the apply loop compacts, and raft reads terms
// and entries meanwhile.
//
// Lock rules: Save, Compact, Reset and Close hold wmu from start to end,
// so writes are serialized and file writes and syncs happen under wmu only,
// never under mu. mu guards the in-memory index; a writer takes it briefly
// to publish what it has written (after the write, so readers never see an
// entry whose record is not in the file). Readers hold mu's read lock while
// they read records from the files, and a segment is closed and deleted
// only after the entries pointing into it were dropped under mu's write
// lock, so a reader never reads a segment deleted under it.
type Log struct {
	fs   vfs.FS
	dir  string
	opts Options

	wmu sync.Mutex // serializes writers; guards the fields below up to mu
	// segs are the open segments, oldest first; the last is active, the one
	// written to.
	segs []*segment
	// off is where the next record goes in the active segment; [0, zeroed)
	// of it is written (with records or zeros); dirty says whether it holds
	// writes not yet synced.
	off, zeroed int64
	dirty       bool
	failed      error      // a write or sync failed: the files' state is unknown, so no more writes
	buf         []byte     // records of one call, reused
	pos         []entryPos // positions of one Save's entries, reused
	zeros       []byte     // a chunk of zeros, allocated on first use

	mu sync.RWMutex // guards idx and closed; they change only with wmu held too, so writers may read them without mu
	// idx is the log's state: HardState, compaction point, entry positions.
	idx    *logIndex
	closed bool
}

// Open opens the log in dir, creating dir and a first segment if there is
// none, and replays all segments: every record's checksum is checked, so
// corruption is found at start. A torn write at the tail of the last
// segment is cut off.
func Open(fs vfs.FS, dir string, opts Options) (*Log, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = defaultSegmentBytes
	}
	if opts.zeroAhead <= 0 {
		opts.zeroAhead = defaultZeroAhead
	}
	l := &Log{fs: fs, dir: dir, opts: opts, idx: newLogIndex()}
	if err := l.open(); err != nil {
		for _, s := range l.segs {
			_ = s.f.Close()
		}
		return nil, err
	}
	return l, nil
}

func (l *Log) open() error {
	if _, err := l.fs.Stat(l.dir); errors.Is(err, os.ErrNotExist) {
		if err := l.fs.MkdirAll(l.dir, 0o755); err != nil {
			return fmt.Errorf("raftwal: create %s: %w", l.dir, err)
		}
		// The directory's entry in its parent must be durable too, or a
		// power loss could take the whole log with it.
		if !l.opts.NoSync {
			if err := syncDir(l.fs, l.fs.PathDir(l.dir)); err != nil {
				return err
			}
		}
	} else if err != nil {
		return fmt.Errorf("raftwal: stat %s: %w", l.dir, err)
	}
	seqs, err := listSegments(l.fs, l.dir)
	if err != nil {
		return fmt.Errorf("raftwal: list %s: %w", l.dir, err)
	}
	if len(seqs) == 0 {
		buf, err := l.header(recCompact, 0, 0, l.idx.hs)
		return l.startSegment(1, buf, err)
	}
	for i, seq := range seqs {
		path := l.fs.PathJoin(l.dir, segmentName(seq))
		lastSeg := i == len(seqs)-1
		var f vfs.File
		if lastSeg {
			f, err = l.fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
		} else {
			f, err = l.fs.Open(path)
		}
		if err != nil {
			return fmt.Errorf("raftwal: open %s: %w", path, err)
		}
		seg := &segment{seq: seq, path: path, f: f}
		l.segs = append(l.segs, seg)
		res, err := scanSegment(seg, l.idx, lastSeg)
		if err != nil {
			return err
		}
		if !lastSeg {
			if res.torn != "" {
				return fmt.Errorf("%w: %s at offset %d: %s (not the last segment)", ErrCorrupt, path, res.tornAt, res.torn)
			}
			continue
		}
		if err := l.openTail(seg, res); err != nil {
			return err
		}
	}
	x := l.idx
	x.compact(x.compIndex, x.compTerm)
	if x.first != x.compIndex+1 {
		return fmt.Errorf("%w: entries %d to %d are missing (compacted through %d, next entry %d)",
			ErrCorrupt, x.compIndex+1, x.first-1, x.compIndex, x.first)
	}
	x.ents = append([]entryPos(nil), x.ents...) // drop what replay outgrew
	x.raiseCommit()
	return nil
}

// openTail makes the last segment, scanned into res, the active one: a
// torn tail, and anything else past the last complete batch, is zeroed,
// so that what is appended next is never followed by stale records; a
// segment left without a complete batch (a crash while it was being
// started) gets its header again.
func (l *Log) openTail(seg *segment, res scanResult) error {
	l.off, l.zeroed = res.end, max(res.end, res.size)
	if res.dirty {
		if err := l.writeZeros(seg.f, res.end, res.size); err != nil {
			return err
		}
		if !l.opts.NoSync {
			if err := seg.f.SyncData(); err != nil {
				return fmt.Errorf("raftwal: sync %s: %w", seg.path, err)
			}
		}
	}
	if res.batches == 0 {
		buf, err := l.header(recCompact, l.idx.compIndex, l.idx.compTerm, l.idx.hs)
		if err != nil {
			return err
		}
		if err := l.write(buf, true); err != nil {
			return err
		}
	}
	return nil
}

// header returns the records every segment starts with: the HardState and
// the compaction point (a compact or a reset record).
func (l *Log) header(point byte, index, term uint64, hs *raftpb.HardState) ([]byte, error) {
	buf, err := appendHardState(l.buf[:0], hs, false)
	if err != nil {
		return nil, err
	}
	l.buf = appendPoint(buf, point, index, term, true)
	return l.buf, nil
}

// startSegment creates segment seq holding header (the result of
// l.header), syncs it and the directory, and makes it the active one. The
// active segment before it is synced first: a segment that is not the last
// must never have a torn tail (doc.go, "Replay"). wmu must be held.
func (l *Log) startSegment(seq uint64, header []byte, err error) error {
	if err != nil {
		return err
	}
	if n := len(l.segs); n > 0 && l.dirty && !l.opts.NoSync {
		if err := l.segs[n-1].f.SyncData(); err != nil {
			return fmt.Errorf("raftwal: sync %s: %w", l.segs[n-1].path, err)
		}
		l.dirty = false
	}
	path := l.fs.PathJoin(l.dir, segmentName(seq))
	f, err := l.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("raftwal: create %s: %w", path, err)
	}
	l.segs = append(l.segs, &segment{seq: seq, path: path, f: f})
	l.off, l.zeroed, l.dirty = 0, 0, false
	if err := l.write(header, true); err != nil {
		return err
	}
	if !l.opts.NoSync {
		return syncDir(l.fs, l.dir)
	}
	return nil
}

// active is the segment written to; wmu must be held.
func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }

// write appends buf to the active segment at l.off in one write call,
// zeroing ahead first if it passes the zeroed part, and with sync (unless
// NoSync) syncs it. wmu must be held.
func (l *Log) write(buf []byte, sync bool) error {
	seg := l.active()
	end := l.off + int64(len(buf))
	if end > l.zeroed {
		// Zeros past SegmentBytes would never be written over: the segment
		// is sealed once a write crosses it.
		to := max(end, min(l.zeroed+l.opts.zeroAhead, l.opts.SegmentBytes))
		if err := l.writeZeros(seg.f, end, to); err != nil {
			return err
		}
		l.zeroed = to
	}
	if _, err := seg.f.WriteAt(buf, l.off); err != nil {
		return fmt.Errorf("raftwal: write %s at %d: %w", seg.path, l.off, err)
	}
	l.off, l.dirty = end, true
	if sync && !l.opts.NoSync {
		if err := seg.f.SyncData(); err != nil {
			return fmt.Errorf("raftwal: sync %s: %w", seg.path, err)
		}
		l.dirty = false
	}
	return nil
}

// writeZeros writes zeros to [from, to) of f.
func (l *Log) writeZeros(f vfs.File, from, to int64) error {
	if l.zeros == nil {
		l.zeros = make([]byte, zeroChunk)
	}
	for off := from; off < to; {
		n := min(int64(len(l.zeros)), to-off)
		clear(l.zeros[:n]) // a file may change what it is given
		if _, err := f.WriteAt(l.zeros[:n], off); err != nil {
			return fmt.Errorf("raftwal: write zeros at %d: %w", off, err)
		}
		off += n
	}
	return nil
}

// maybeRotate starts the next segment once the active one is full. wmu
// must be held.
func (l *Log) maybeRotate() error {
	if l.off < l.opts.SegmentBytes {
		return nil
	}
	buf, err := l.header(recCompact, l.idx.compIndex, l.idx.compTerm, l.idx.hs)
	return l.startSegment(l.active().seq+1, buf, err)
}

// usable returns why the log cannot be written, if it cannot. wmu must be
// held.
func (l *Log) usable() error {
	if l.closed {
		return errClosed
	}
	return l.failed
}

// fail records err as the reason no more writes are accepted: after a
// failed write or sync the files' contents are unknown (a failed fsync may
// have dropped the dirty pages it was to write). wmu must be held.
func (l *Log) fail(err error) error {
	l.failed = fmt.Errorf("raftwal: log failed earlier: %w", err)
	return err
}

// HardState returns a copy of the last HardState saved (empty if none).
func (l *Log) HardState() *raftpb.HardState {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return proto.Clone(l.idx.hs).(*raftpb.HardState)
}

// Compacted returns the compaction point: the entries at or below index
// are gone, and term is the term of the entry at index.
func (l *Log) Compacted() (index, term uint64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.idx.compIndex, l.idx.compTerm
}

// FirstIndex returns the index of the first entry the log can hold: the
// compacted index + 1.
func (l *Log) FirstIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.idx.compIndex + 1
}

// LastIndex returns the index of the last entry, or the compacted index if
// the log holds none.
func (l *Log) LastIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.idx.last()
}

// Term returns the term of the entry at i, with raft.Storage's errors: i
// below the compaction point is raft.ErrCompacted (the compaction point's
// own term is kept), i past the last entry raft.ErrUnavailable.
func (l *Log) Term(i uint64) (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	x := l.idx
	switch {
	case i == x.compIndex:
		return x.compTerm, nil
	case i < x.compIndex:
		return 0, raft.ErrCompacted
	case i > x.last():
		return 0, raft.ErrUnavailable
	}
	return x.at(i).term, nil
}

// Entries returns the entries in [lo, hi), read from the files, with
// raft.Storage's semantics: lo at or below the compaction point is
// raft.ErrCompacted, hi past the last entry + 1 raft.ErrUnavailable, and
// the entries stop before their total size (len(Data)+16 each, as
// internal/raftlog/storage.go counts) passes maxSize, but there is at
// least one. Every record read has its checksum checked.
func (l *Log) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, errClosed
	}
	x := l.idx
	if lo <= x.compIndex {
		return nil, raft.ErrCompacted
	}
	if hi > x.last()+1 {
		return nil, raft.ErrUnavailable
	}
	if lo >= hi {
		return nil, nil
	}
	// The index knows every record's length, so the limit is applied
	// before anything is read.
	ps := x.ents[lo-x.first : hi-x.first]
	var size uint64
	for i, p := range ps {
		sz := uint64(p.n) - entryOverhead + 16
		if i > 0 && size+sz > maxSize {
			ps = ps[:i]
			break
		}
		size += sz
	}
	out := make([]*raftpb.Entry, 0, len(ps))
	for j := 0; j < len(ps); {
		// A run of records adjacent in one segment is read at once: a
		// stretch of the log is usually written in order.
		k, span := j+1, int64(ps[j].n)
		for k < len(ps) && ps[k].seg == ps[j].seg && ps[k].off == ps[k-1].off+int64(ps[k-1].n) && span < maxReadRun {
			span += int64(ps[k].n)
			k++
		}
		buf := make([]byte, span)
		seg := ps[j].seg
		if n, err := seg.f.ReadAt(buf, ps[j].off); n < len(buf) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("raftwal: read %s at %d: %w", seg.path, ps[j].off, err)
		}
		base := ps[j].off
		for ; j < k; j++ {
			p := ps[j]
			e, err := decodeEntry(buf[p.off-base:p.off-base+int64(p.n)], lo+uint64(len(out)), p.term)
			if err != nil {
				return nil, fmt.Errorf("%w: %s at offset %d: %v", ErrCorrupt, seg.path, p.off, err)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// Save appends ents and records hs (unless it is empty, as
// raft.IsEmptyHardState says). ents[0] may replace entries: the entries
// from its index on are dropped first (raft's rule for a conflicting
// suffix); it must not leave a gap after the last entry. Entries at or
// below the compaction point are skipped, as raft.MemoryStorage does.
//
// The records of one call are written in one write and replayed all or
// none after a crash. With sync (and not NoSync) Save returns once they are
// durable, after one fdatasync.
func (l *Log) Save(hs *raftpb.HardState, ents []*raftpb.Entry, sync bool) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	x := l.idx // read without mu: only writers change it, and wmu is held
	for len(ents) > 0 && ents[0].GetIndex() <= x.compIndex {
		ents = ents[1:]
	}
	if len(ents) > 0 {
		if first, last := ents[0].GetIndex(), x.last(); first > last+1 {
			return fmt.Errorf("raftwal: append at %d leaves a gap after last index %d", first, last)
		}
		for j, e := range ents[1:] {
			if want := ents[0].GetIndex() + uint64(j) + 1; e.GetIndex() != want {
				return fmt.Errorf("raftwal: entry %d where %d should follow", e.GetIndex(), want)
			}
		}
	}
	withHS := !raft.IsEmptyHardState(hs)
	if !withHS && len(ents) == 0 {
		if sync && l.dirty && !l.opts.NoSync {
			// Nothing new, but earlier unsynced saves are to be durable.
			if err := l.active().f.SyncData(); err != nil {
				return l.fail(fmt.Errorf("raftwal: sync %s: %w", l.active().path, err))
			}
			l.dirty = false
		}
		return nil
	}
	seg, buf, pos := l.active(), l.buf[:0], l.pos[:0]
	for j, e := range ents {
		start := len(buf)
		buf = appendEntry(buf, e, j == len(ents)-1 && !withHS)
		pos = append(pos, entryPos{seg: seg, off: l.off + int64(start), n: uint32(len(buf) - start), term: e.GetTerm()})
	}
	if withHS {
		var err error
		if buf, err = appendHardState(buf, hs, true); err != nil {
			return err
		}
	}
	l.buf, l.pos = buf, pos
	if err := l.write(buf, sync); err != nil {
		return l.fail(err)
	}
	l.mu.Lock()
	for j, e := range ents {
		x.appendEntry(e.GetIndex(), pos[j])
	}
	if withHS {
		x.hs = cloneHardState(hs)
		x.raiseCommit()
	}
	l.mu.Unlock()
	if len(ents) > 0 {
		seg.maxIndex = max(seg.maxIndex, ents[len(ents)-1].GetIndex())
	}
	if err := l.maybeRotate(); err != nil {
		return l.fail(err)
	}
	return nil
}

// Compact drops the entries at or below index, which must be in
// (compacted index, last index]; an index at or below the compaction point
// is a no-op. The new compaction point is synced before anything is
// deleted; then every whole segment whose entries are all at or below
// index goes, oldest first, never the active one.
//
// Only a prefix of the segments is deleted: a later segment whose entries
// are all at or below index may have replaced entries of an earlier one
// that is kept, and without it those replaced entries would come back.
func (l *Log) Compact(index uint64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	x := l.idx
	if index <= x.compIndex {
		return nil
	}
	if last := x.last(); index > last {
		return fmt.Errorf("raftwal: compact %d is beyond last index %d", index, last)
	}
	term := x.at(index).term
	l.buf = appendPoint(l.buf[:0], recCompact, index, term, true)
	if err := l.write(l.buf, true); err != nil {
		return l.fail(err)
	}
	var gone []*segment
	l.mu.Lock()
	x.compact(index, term)
	x.raiseCommit()
	// After this no entry points into the segments let go (their entries
	// are all at or below index), so no reader can reach them.
	for len(l.segs) > 1 && l.segs[0].maxIndex <= index {
		gone = append(gone, l.segs[0])
		l.segs = l.segs[1:]
	}
	l.mu.Unlock()
	if err := l.remove(gone); err != nil {
		return err
	}
	if err := l.maybeRotate(); err != nil {
		return l.fail(err)
	}
	return nil
}

// remove closes and deletes segments no entry points into any more, oldest
// first, and syncs the directory. A failure leaves files that replay
// handles (a segment kept by mistake holds only entries at or below the
// compaction point), so it does not stop the log. wmu must be held.
func (l *Log) remove(gone []*segment) error {
	if len(gone) == 0 {
		return nil
	}
	var first error
	for _, s := range gone {
		if err := s.f.Close(); err != nil && first == nil {
			first = fmt.Errorf("raftwal: close %s: %w", s.path, err)
		}
		if err := l.fs.Remove(s.path); err != nil && first == nil {
			first = fmt.Errorf("raftwal: remove %s: %w", s.path, err)
		}
	}
	if !l.opts.NoSync {
		if err := syncDir(l.fs, l.dir); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Reset empties the log after a snapshot of the state machine at index was
// installed: the compaction point becomes (index, term), which must not be
// below the current one, and the HardState hs (the current one if hs is
// nil or empty) with its commit index raised to at least index. It is
// durable on return: a new segment starts with it, synced, and then every
// older segment is deleted.
func (l *Log) Reset(index, term uint64, hs *raftpb.HardState) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	x := l.idx
	if index < x.compIndex {
		return fmt.Errorf("raftwal: reset at %d is below the compaction point %d", index, x.compIndex)
	}
	if raft.IsEmptyHardState(hs) {
		hs = x.hs
	}
	h := cloneHardState(hs)
	if h.GetCommit() < index {
		h.Commit = proto.Uint64(index)
	}
	buf, err := l.header(recReset, index, term, h)
	if err := l.startSegment(l.active().seq+1, buf, err); err != nil {
		return l.fail(err)
	}
	l.mu.Lock()
	x.reset(index, term)
	x.hs = h
	gone := l.segs[:len(l.segs)-1]
	l.segs = []*segment{l.active()}
	l.mu.Unlock()
	return l.remove(gone)
}

// Close closes the segment files. Only the read methods that keep to
// memory may be called after it; the others return an error.
func (l *Log) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var first error
	for _, s := range l.segs {
		if err := s.f.Close(); err != nil && first == nil {
			first = fmt.Errorf("raftwal: close %s: %w", s.path, err)
		}
	}
	return first
}
