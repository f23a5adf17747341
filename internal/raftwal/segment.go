package raftwal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
)

const segmentSuffix = ".wal"

// segment is one open segment file.
type segment struct {
	seq  uint64
	path string
	f    vfs.File // read by Entries (ReadAt) under Log.mu; closed only once no entry points into it
	// maxIndex is the highest entry index written to the segment (replaced
	// entries included); guarded by Log.wmu. Compact deletes a segment only
	// when it is at or below the compaction point.
	maxIndex uint64
}

func segmentName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, segmentSuffix) }

// parseSegmentName returns the sequence number of a segment's file name;
// other files are not the log's.
func parseSegmentName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	return seq, err == nil
}

// listSegments returns the sequence numbers of dir's segments, oldest first.
func listSegments(fs vfs.FS, dir string) ([]uint64, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, n := range names {
		if seq, ok := parseSegmentName(n); ok {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// Exists reports whether dir holds at least one segment.
func Exists(fs vfs.FS, dir string) (bool, error) {
	seqs, err := listSegments(fs, dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("raftwal: list %s: %w", dir, err)
	}
	return len(seqs) > 0, nil
}

// syncDir makes the creation or removal of files in dir durable.
func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("raftwal: open directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("raftwal: sync directory %s: %w", dir, err)
	}
	return nil
}

// entryPos is where a live entry's record is: the in-memory index keeps
// this, not the entry's data.
type entryPos struct {
	seg  *segment
	off  int64
	n    uint32 // record length, header included
	term uint64
}

// logIndex is the log's state in memory. Replay builds it record by
// record; the Log keeps it up to date under its locks.
type logIndex struct {
	hs                  *raftpb.HardState
	compIndex, compTerm uint64
	// ents holds the entries first..first+len(ents)-1. While the log is in
	// use first is compIndex+1; during replay it may be higher, after a
	// gap left by deleted segments, until a compaction point covers it.
	first uint64
	ents  []entryPos
}

func newLogIndex() *logIndex { return &logIndex{hs: &raftpb.HardState{}, first: 1} }

// last is the last entry's index, or first-1 if there are none.
func (x *logIndex) last() uint64 { return x.first + uint64(len(x.ents)) - 1 }

func (x *logIndex) at(i uint64) *entryPos { return &x.ents[i-x.first] }

// appendEntry records an entry at index i: it replaces the entry at i and
// drops those after it (a conflicting suffix), or starts the log afresh at
// i when i leaves a gap (or lies below the entries known).
func (x *logIndex) appendEntry(i uint64, p entryPos) {
	if i < x.first || i > x.last()+1 {
		clear(x.ents)
		x.ents, x.first = x.ents[:0], i
	} else {
		clear(x.ents[i-x.first:])
		x.ents = x.ents[:i-x.first]
	}
	x.ents = append(x.ents, p)
}

// compact raises the compaction point to (index, term) and drops the
// entries at or below it.
func (x *logIndex) compact(index, term uint64) {
	if index > x.compIndex {
		x.compIndex, x.compTerm = index, term
	}
	if x.first > x.compIndex {
		return
	}
	drop := min(x.compIndex+1-x.first, uint64(len(x.ents)))
	// Reslicing keeps compaction O(1); the cleared slots let the dropped
	// segments be collected, and append replaces the backing array in time.
	clear(x.ents[:drop])
	x.ents = x.ents[drop:]
	x.first = x.compIndex + 1
}

// reset empties the log at (index, term).
func (x *logIndex) reset(index, term uint64) {
	x.compIndex, x.compTerm = index, term
	clear(x.ents)
	x.ents, x.first = nil, index+1
}

// raiseCommit makes the HardState's commit index at least the compaction
// point: those entries were applied, so committed, but the HardState that
// said so may have been saved without sync and lost; raft refuses to start
// with a commit index below its first index - 1.
func (x *logIndex) raiseCommit() {
	if x.hs.GetCommit() < x.compIndex {
		x.hs = cloneHardState(x.hs)
		c := x.compIndex
		x.hs.Commit = &c
	}
}

// apply applies a decoded record at off in seg.
func (x *logIndex) apply(seg *segment, off int64, n uint32, r record) {
	switch r.typ {
	case recEntry:
		x.appendEntry(r.index, entryPos{seg: seg, off: off, n: n, term: r.term})
		seg.maxIndex = max(seg.maxIndex, r.index)
	case recHardState:
		x.hs = r.hs
	case recCompact:
		x.compact(r.index, r.term)
	case recReset:
		x.reset(r.index, r.term)
	}
}

// scanResult is what scanSegment found.
type scanResult struct {
	end     int64  // offset just past the last complete batch
	size    int64  // file size
	torn    string // why the data stopped before a zero length field or the end of the file, "" if it did not
	tornAt  int64  // offset of the record or batch that is torn
	dirty   bool   // non-zero bytes lie at or past end (checked only with checkTail)
	batches int    // complete batches
}

// pendingRecord is a record of a batch not yet read to its end.
type pendingRecord struct {
	off int64
	n   uint32
	r   record
}

// scanSegment reads seg from its start and applies each complete batch to
// x. A record that cannot be decoded although its checksum matched is
// ErrCorrupt (returned); a torn record or batch is reported in the result,
// for the caller to judge by where the segment is. With checkTail it also
// reports whether anything but zeros lies past the last complete batch.
func scanSegment(seg *segment, x *logIndex, checkTail bool) (scanResult, error) {
	var res scanResult
	st, err := seg.f.Stat()
	if err != nil {
		return res, fmt.Errorf("raftwal: stat %s: %w", seg.path, err)
	}
	res.size = st.Size()
	r := bufio.NewReaderSize(io.NewSectionReader(seg.f, 0, res.size), 256<<10)
	var (
		off     int64 // offset of the next record
		rec     []byte
		pending []pendingRecord
	)
	for {
		if res.size-off < 8 {
			// Zeros too short for a header end the data like a zero
			// length field: a segment sealed by Reset keeps its zeros.
			if nz, err := nonZero(seg, off, res.size); err != nil {
				return res, err
			} else if nz {
				res.torn, res.tornAt = "record header cut by the end of the file", off
			}
			break
		}
		rec = slices.Grow(rec[:0], 8)[:8]
		if _, err := io.ReadFull(r, rec); err != nil {
			return res, fmt.Errorf("raftwal: read %s at %d: %w", seg.path, off, err)
		}
		length := int64(binary.BigEndian.Uint32(rec[4:]))
		if length == 0 {
			break // the zeroed space past the data
		}
		if length > res.size-off-8 {
			res.torn, res.tornAt = fmt.Sprintf("record length %d runs past the end of the file (%d bytes)", length, res.size), off
			break
		}
		rec = slices.Grow(rec, int(length))[:8+length]
		if _, err := io.ReadFull(r, rec[8:]); err != nil {
			return res, fmt.Errorf("raftwal: read %s at %d: %w", seg.path, off, err)
		}
		typ, last, p, ok := checkRecord(rec)
		if !ok {
			// A write torn by a power loss leaves some of its sectors
			// unwritten, and they read as the zeros written ahead of it;
			// a record whose every sector holds data was written whole and
			// damaged afterwards: cutting the log there would silently drop
			// it and every acknowledged write after it.
			// So is one followed by a valid record: a torn write ends the
			// data.
			if !hasZeroSector(rec, off) {
				return res, fmt.Errorf("%w: %s at offset %d: checksum mismatch in a record written whole (damaged, not torn by a crash)", ErrCorrupt, seg.path, off)
			}
			if next := off + 8 + length; validRecordAt(seg, next, res.size) {
				return res, fmt.Errorf("%w: %s at offset %d: checksum mismatch in a record followed by a valid one at %d (damaged, not torn by a crash)", ErrCorrupt, seg.path, off, next)
			}
			res.torn, res.tornAt = "checksum mismatch", off
			break
		}
		d, err := decodeRecord(typ, p)
		if err != nil {
			return res, fmt.Errorf("%w: %s at offset %d: %v", ErrCorrupt, seg.path, off, err)
		}
		pending = append(pending, pendingRecord{off: off, n: uint32(8 + length), r: d})
		off += 8 + length
		if last {
			for _, pr := range pending {
				x.apply(seg, pr.off, pr.n, pr.r)
			}
			clear(pending)
			pending = pending[:0]
			res.end = off
			res.batches++
		}
	}
	if len(pending) > 0 && res.torn == "" {
		res.torn, res.tornAt = fmt.Sprintf("batch of %d records without its end", len(pending)), res.end
	}
	if res.torn != "" {
		res.dirty = true
		return res, nil
	}
	if checkTail {
		res.dirty, err = nonZero(seg, res.end, res.size)
	}
	return res, err
}

// nonZero reports whether seg holds a non-zero byte in [from, to).
func nonZero(seg *segment, from, to int64) (bool, error) {
	buf := make([]byte, min(to-from, 256<<10))
	for off := from; off < to; {
		n := min(int64(len(buf)), to-off)
		if _, err := seg.f.ReadAt(buf[:n], off); err != nil && !(errors.Is(err, io.EOF)) {
			return false, fmt.Errorf("raftwal: read %s at %d: %w", seg.path, off, err)
		}
		for _, b := range buf[:n] {
			if b != 0 {
				return true, nil
			}
		}
		off += n
	}
	return false, nil
}

// sectorSize is the unit a disk writes atomically: a torn write loses
// whole sectors.
const sectorSize = 512

// hasZeroSector reports whether rec, read at file offset off, has a part
// lying in one sector that is all zeros: what a sector the crash did not
// write holds.
func hasZeroSector(rec []byte, off int64) bool {
	for start := 0; start < len(rec); {
		end := min(len(rec), start+sectorSize-int((off+int64(start))%sectorSize))
		zero := true
		for _, b := range rec[start:end] {
			if b != 0 {
				zero = false
				break
			}
		}
		if zero {
			return true
		}
		start = end
	}
	return false
}

// validRecordAt reports whether a record with a matching checksum starts at
// off in seg, whose size is size.
func validRecordAt(seg *segment, off, size int64) bool {
	if size-off < 8 {
		return false
	}
	var h [8]byte
	if _, err := seg.f.ReadAt(h[:], off); err != nil {
		return false
	}
	length := int64(binary.BigEndian.Uint32(h[4:]))
	if length == 0 || length > size-off-8 {
		return false
	}
	rec := make([]byte, 8+length)
	if _, err := seg.f.ReadAt(rec, off); err != nil {
		return false
	}
	_, _, _, ok := checkRecord(rec)
	return ok
}
