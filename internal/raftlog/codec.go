package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/crc32c"
)

// ErrCorrupt is wrapped by every error reporting a record whose checksum or
// framing is wrong.
var ErrCorrupt = errors.New("raftlog: corrupt record")

// frame prefixes payload with its CRC32-C.
func frame(payload []byte) []byte {
	out := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(out, crc32c.Checksum(payload))
	copy(out[4:], payload)
	return out
}

// unframe checks the CRC and returns the payload.
func unframe(key, v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, fmt.Errorf("%w: key %q: record of %d bytes is shorter than its checksum", ErrCorrupt, key, len(v))
	}
	want := binary.BigEndian.Uint32(v)
	if got := crc32c.Checksum(v[4:]); got != want {
		return nil, fmt.Errorf("%w: key %q: crc mismatch (stored %08x, computed %08x)", ErrCorrupt, key, want, got)
	}
	return v[4:], nil
}

// Entry payload: term (8 BE), type (1), data. The index is the engine key,
// so it is not repeated; a hand-written layout avoids protobuf reflection on
// the hottest write path.
func encodeEntry(e *raftpb.Entry) []byte { return appendEntry(nil, e) }

// appendEntry appends encodeEntry(e) to dst, so that Save encodes a Ready's
// entries into one reused buffer (the batch copies what it is given).
func appendEntry(dst []byte, e *raftpb.Entry) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, e.GetTerm())
	dst = append(dst, byte(e.GetType()))
	dst = append(dst, e.Data...)
	binary.BigEndian.PutUint32(dst[start:], crc32c.Checksum(dst[start+4:]))
	return dst
}

func decodeEntry(key, v []byte, index uint64) (*raftpb.Entry, error) {
	p, err := unframe(key, v)
	if err != nil {
		return nil, err
	}
	if len(p) < 9 {
		return nil, fmt.Errorf("%w: key %q: entry payload of %d bytes", ErrCorrupt, key, len(p))
	}
	typ := raftpb.EntryType(p[8])
	if _, ok := raftpb.EntryType_name[int32(typ)]; !ok {
		return nil, fmt.Errorf("%w: key %q: unknown entry type %d", ErrCorrupt, key, typ)
	}
	e := &raftpb.Entry{
		Term:  proto.Uint64(binary.BigEndian.Uint64(p)),
		Index: proto.Uint64(index),
		Type:  typ.Enum(),
	}
	if len(p) > 9 {
		e.Data = append([]byte(nil), p[9:]...)
	}
	return e, nil
}

func encodeProto(m proto.Message) ([]byte, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return frame(b), nil
}

func decodeProto(key, v []byte, m proto.Message) error {
	p, err := unframe(key, v)
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(p, m); err != nil {
		return fmt.Errorf("%w: key %q: %v", ErrCorrupt, key, err)
	}
	return nil
}
