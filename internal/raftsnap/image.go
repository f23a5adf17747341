package raftsnap

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage"
)

// maxKey is above every key the schema uses (each starts with an ASCII
// letter and '/'); it closes the last span for DeleteRange.
var maxKey = bytes.Repeat([]byte{0xff}, 16)

// span is a half-open key range; a nil end means unbounded.
type span struct{ start, end []byte }

// replicatedSpans are the key ranges an image carries: everything but the
// Raft log records (r/), the staging area (s/) and this member's own ID.
func replicatedSpans() []span {
	afterID := append(append([]byte(nil), storage.KeyMemberID...), 0)
	return []span{
		// From 0x00, not the empty key: no schema key is empty, and Pebble's
		// invariant checks (race builds) trip over an empty range start.
		{[]byte{0}, storage.KeyMemberID},
		{afterID, storage.PrefixRaft},
		{storage.PrefixEnd(storage.PrefixRaft), storage.PrefixSnapStaging},
		{storage.PrefixEnd(storage.PrefixSnapStaging), nil},
	}
}

// Image is a consistent view of the replicated state, ready to stream.
type Image struct {
	// Meta is the applied index and its term the image corresponds to, and
	// the ConfState as of that index: the metadata the MsgSnap must carry.
	Meta *raftpb.SnapshotMetadata
	snap storage.Snapshot
}

// OpenImage takes an engine snapshot and reads from it the applied index,
// its term and the ConfState, which every apply batch writes together with
// the state, so the three always describe exactly the data streamed.
func OpenImage(eng storage.Engine) (*Image, error) {
	snap := eng.NewSnapshot()
	v, err := snap.Get(storage.KeyAppliedIndex)
	if err != nil {
		snap.Close()
		return nil, fmt.Errorf("raftsnap: read applied index: %w", err)
	}
	if len(v) != 16 {
		snap.Close()
		return nil, fmt.Errorf("raftsnap: applied index record has %d bytes", len(v))
	}
	cs, err := raftlog.ReadConfState(snap)
	if err != nil {
		snap.Close()
		return nil, err
	}
	return &Image{
		Meta: &raftpb.SnapshotMetadata{
			Index:     proto.Uint64(binary.BigEndian.Uint64(v)),
			Term:      proto.Uint64(binary.BigEndian.Uint64(v[8:])),
			ConfState: cs,
		},
		snap: snap,
	}, nil
}

// Close releases the engine snapshot.
func (im *Image) Close() error { return im.snap.Close() }

// WriteTo streams the image: a header chunk, the data chunks in key order
// and an end chunk with the totals the receiver checks.
func (im *Image) WriteTo(w io.Writer) (int64, error) {
	cw := &chunkWriter{w: w}
	var hdr [16]byte
	binary.BigEndian.PutUint64(hdr[:8], im.Meta.GetIndex())
	binary.BigEndian.PutUint64(hdr[8:], im.Meta.GetTerm())
	if err := cw.write(chunkHeader, hdr[:]); err != nil {
		return cw.n, err
	}
	var keys, bytes uint64
	for _, sp := range replicatedSpans() {
		it, err := im.snap.NewIter(storage.IterOptions{LowerBound: sp.start, UpperBound: sp.end})
		if err != nil {
			return cw.n, fmt.Errorf("raftsnap: open iterator: %w", err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			if err := cw.add(it.Key(), it.Value()); err != nil {
				it.Close()
				return cw.n, err
			}
			keys++
			bytes += uint64(len(it.Key()) + len(it.Value()))
		}
		err = it.Error()
		it.Close()
		if err != nil {
			return cw.n, fmt.Errorf("raftsnap: scan: %w", err)
		}
	}
	if err := cw.flush(); err != nil {
		return cw.n, err
	}
	var end [16]byte
	binary.BigEndian.PutUint64(end[:8], keys)
	binary.BigEndian.PutUint64(end[8:], bytes)
	return cw.n, cw.write(chunkEnd, end[:])
}
