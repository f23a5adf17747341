package raftwal

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/crc32c"
)

// ErrCorrupt is wrapped by every error reporting corruption: a bad checksum
// or framing anywhere but at the tail of the last segment, an index gap the
// compaction point does not cover, an unknown record type.
var ErrCorrupt = errors.New("raftwal: corrupt log")

// Record framing; doc.go describes the layout.
const (
	headerLen = 9 // crc (4), length (4), type (1)
	// batchEnd is set in the type byte of the last record of a batch.
	batchEnd = 0x80

	recEntry     byte = 1
	recHardState byte = 2
	recCompact   byte = 3
	recReset     byte = 4

	// entryFixed is the entry payload before its data: term, index, type.
	entryFixed = 17
	// entryOverhead is what an entry record holds besides the entry's data.
	entryOverhead = headerLen + entryFixed
	// pointLen is the payload of a compact or reset record: index, term.
	pointLen = 16
)

// beginRecord appends the header of a record of type typ (its crc and
// length are filled in by endRecord) and returns where the record starts.
func beginRecord(buf []byte, typ byte, last bool) ([]byte, int) {
	if last {
		typ |= batchEnd
	}
	start := len(buf)
	return append(buf, 0, 0, 0, 0, 0, 0, 0, 0, typ), start
}

// endRecord fills in the length and crc of the record starting at start,
// which runs to the end of buf.
func endRecord(buf []byte, start int) {
	binary.BigEndian.PutUint32(buf[start+4:], uint32(len(buf)-start-8))
	binary.BigEndian.PutUint32(buf[start:], crc32c.Checksum(buf[start+4:]))
}

// appendEntry appends e's record to buf. The layout is written by hand: this
// is the hottest write path, and proto.Marshal's reflection costs more than
// the copy.
func appendEntry(buf []byte, e *raftpb.Entry, last bool) []byte {
	buf, start := beginRecord(buf, recEntry, last)
	buf = binary.BigEndian.AppendUint64(buf, e.GetTerm())
	buf = binary.BigEndian.AppendUint64(buf, e.GetIndex())
	buf = append(buf, byte(e.GetType()))
	buf = append(buf, e.Data...)
	endRecord(buf, start)
	return buf
}

// appendHardState appends hs's record to buf.
func appendHardState(buf []byte, hs *raftpb.HardState, last bool) ([]byte, error) {
	buf, start := beginRecord(buf, recHardState, last)
	buf, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(buf, hs)
	if err != nil {
		return nil, fmt.Errorf("raftwal: encode hard state: %w", err)
	}
	endRecord(buf, start)
	return buf, nil
}

// appendPoint appends a compact or reset record to buf.
func appendPoint(buf []byte, typ byte, index, term uint64, last bool) []byte {
	buf, start := beginRecord(buf, typ, last)
	buf = binary.BigEndian.AppendUint64(buf, index)
	buf = binary.BigEndian.AppendUint64(buf, term)
	endRecord(buf, start)
	return buf
}

// checkRecord verifies the checksum of rec, a whole record whose length
// field says len(rec)-8, and returns its type (without the batch flag),
// whether it ends a batch, and its payload.
func checkRecord(rec []byte) (typ byte, last bool, payload []byte, ok bool) {
	if len(rec) < headerLen || crc32c.Checksum(rec[4:]) != binary.BigEndian.Uint32(rec) {
		return 0, false, nil, false
	}
	return rec[8] &^ batchEnd, rec[8]&batchEnd != 0, rec[headerLen:], true
}

// record is a decoded record other than an entry's data.
type record struct {
	typ         byte
	index, term uint64            // entry, compact, reset
	hs          *raftpb.HardState // hardstate
}

// decodeRecord parses a payload whose checksum matched. A failure here is
// corruption, never a torn write: the checksum covered these bytes.
func decodeRecord(typ byte, p []byte) (record, error) {
	r := record{typ: typ}
	switch typ {
	case recEntry:
		if len(p) < entryFixed {
			return r, fmt.Errorf("entry payload of %d bytes", len(p))
		}
		r.term, r.index = binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:])
		if _, ok := raftpb.EntryType_name[int32(p[16])]; !ok {
			return r, fmt.Errorf("entry %d of unknown type %d", r.index, p[16])
		}
	case recHardState:
		r.hs = &raftpb.HardState{}
		if err := proto.Unmarshal(p, r.hs); err != nil {
			return r, fmt.Errorf("hard state: %v", err)
		}
	case recCompact, recReset:
		if len(p) != pointLen {
			return r, fmt.Errorf("record of type %d with a payload of %d bytes", typ, len(p))
		}
		r.index, r.term = binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:])
	default:
		return r, fmt.Errorf("unknown record type %d", typ)
	}
	return r, nil
}

// decodeEntry parses the entry record rec (read back by Entries), which
// must hold the entry at index with term. The entry's Data aliases rec.
func decodeEntry(rec []byte, index, term uint64) (*raftpb.Entry, error) {
	typ, _, p, ok := checkRecord(rec)
	if !ok {
		return nil, errors.New("checksum mismatch")
	}
	if typ != recEntry {
		return nil, fmt.Errorf("record of type %d where entry %d should be", typ, index)
	}
	r, err := decodeRecord(typ, p)
	if err != nil {
		return nil, err
	}
	if r.index != index || r.term != term {
		return nil, fmt.Errorf("entry %d/%d where %d/%d should be", r.index, r.term, index, term)
	}
	e := &raftpb.Entry{
		Term:  proto.Uint64(term),
		Index: proto.Uint64(index),
		Type:  raftpb.EntryType(p[16]).Enum(),
	}
	if len(p) > entryFixed {
		// Capped: an append to one entry's Data must not run into the next
		// entry, which shares the buffer.
		e.Data = p[entryFixed:len(p):len(p)]
	}
	return e, nil
}

// cloneHardState copies hs without reflection (Save does it every call).
func cloneHardState(hs *raftpb.HardState) *raftpb.HardState {
	return &raftpb.HardState{Term: clonePtr(hs.Term), Vote: clonePtr(hs.Vote), Commit: clonePtr(hs.Commit)}
}

func clonePtr(p *uint64) *uint64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
