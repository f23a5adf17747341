package raftsnap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/failpoint"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage"
)

// batchBytes is how much a staging or installation batch holds before it
// is committed, which bounds memory whatever the size of the image.
const batchBytes = 4 << 20

// Receiver stages received images and installs them. Staging and
// installation exclude each other.
type Receiver struct {
	eng      storage.Engine
	received atomic.Uint64 // bytes staged, ever: shows progress

	mu     sync.Mutex               // guards staged; held through staging and installation
	staged *raftpb.SnapshotMetadata // the complete image under s/, if any
}

// NewReceiver returns a Receiver on eng. Call Recover first at start.
func NewReceiver(eng storage.Engine) *Receiver { return &Receiver{eng: eng} }

// Received is how many bytes of images were staged since start; it grows
// while an image is being received.
func (rc *Receiver) Received() uint64 { return rc.received.Load() }

// Staged returns the metadata of the staged image, or nil.
func (rc *Receiver) Staged() *raftpb.SnapshotMetadata {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.staged == nil {
		return nil
	}
	return proto.Clone(rc.staged).(*raftpb.SnapshotMetadata)
}

// Stage reads the image of md from r into the staging area, replacing any
// earlier staged image, and checks every chunk, the header against md and
// the totals in the end chunk. The live state is not touched.
func (rc *Receiver) Stage(r io.Reader, md *raftpb.SnapshotMetadata) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.staged = nil
	if err := clearStaging(rc.eng); err != nil {
		return err
	}
	cr := newChunkReader(r)
	typ, p, err := cr.next()
	if err != nil {
		return err
	}
	if typ != chunkHeader || len(p) != 16 {
		return fmt.Errorf("%w: stream does not start with a header", ErrCorrupt)
	}
	if idx, term := binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:]); idx != md.GetIndex() || term != md.GetTerm() {
		return fmt.Errorf("%w: image of index %d term %d, message says index %d term %d", ErrCorrupt, idx, term, md.GetIndex(), md.GetTerm())
	}
	b := rc.eng.NewBatch()
	defer func() { b.Close() }()
	var (
		keys, nbytes, pending uint64
		last                  []byte
		key                   []byte
	)
	for {
		typ, p, err := cr.next()
		if err != nil {
			return err
		}
		if typ == chunkEnd {
			if len(p) != 16 {
				return fmt.Errorf("%w: end chunk of %d bytes", ErrCorrupt, len(p))
			}
			if k, n := binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:]); k != keys || n != nbytes {
				return fmt.Errorf("%w: received %d keys (%d bytes), sender wrote %d (%d bytes)", ErrCorrupt, keys, nbytes, k, n)
			}
			break
		}
		if typ != chunkData {
			return fmt.Errorf("%w: unexpected chunk %q", ErrCorrupt, typ)
		}
		err = pairs(p, func(k, v []byte) error {
			if last != nil && bytes.Compare(k, last) <= 0 {
				return fmt.Errorf("%w: keys out of order", ErrCorrupt)
			}
			if !replicated(k) {
				return fmt.Errorf("%w: key %q is not part of the replicated state", ErrCorrupt, k)
			}
			last = append(last[:0], k...)
			key = append(append(key[:0], storage.PrefixSnapStaging...), k...)
			if err := b.Set(key, v); err != nil {
				return err
			}
			keys++
			nbytes += uint64(len(k) + len(v))
			rc.received.Add(uint64(len(k) + len(v)))
			pending += uint64(len(k) + len(v))
			if pending >= batchBytes {
				if err := b.Commit(false); err != nil {
					return fmt.Errorf("raftsnap: commit staging: %w", err)
				}
				b.Close()
				b = rc.eng.NewBatch()
				pending = 0
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	// Unsynced: the installation marker is committed synced before the
	// staging is used, and commits become durable in order.
	if err := b.Commit(false); err != nil {
		return fmt.Errorf("raftsnap: commit staging: %w", err)
	}
	rc.staged = proto.Clone(md).(*raftpb.SnapshotMetadata)
	return nil
}

// Install replaces the live state with the staged image of md and records
// md in the Raft log. A crash at any point leaves either the old state (the
// marker was not durable yet) or an installation Recover completes.
func (rc *Receiver) Install(md *raftpb.SnapshotMetadata, log *raftlog.Storage) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.staged == nil || rc.staged.GetIndex() != md.GetIndex() || rc.staged.GetTerm() != md.GetTerm() {
		return fmt.Errorf("raftsnap: no staged image for snapshot at index %d term %d (staged: %v)", md.GetIndex(), md.GetTerm(), rc.staged)
	}
	// The staged image's ConfState is the one the leader read with the data.
	md = proto.Clone(md).(*raftpb.SnapshotMetadata)
	if md.ConfState == nil {
		md.ConfState = rc.staged.GetConfState()
	}
	mv, err := raftlog.EncodeMetadata(md)
	if err != nil {
		return err
	}
	b := rc.eng.NewBatch()
	defer b.Close()
	if err := b.Set(storage.KeyRaftInstall, mv); err != nil {
		return err
	}
	failpoint.Inject(failpoint.RaftBeforeSaveSnap)
	if err := b.Commit(true); err != nil {
		return fmt.Errorf("raftsnap: commit installation marker: %w", err)
	}
	failpoint.Inject(failpoint.RaftAfterSaveSnap)
	if err := replaceLive(rc.eng); err != nil {
		return err
	}
	fb := rc.eng.NewBatch()
	defer fb.Close()
	if err := finishBatch(fb); err != nil {
		return err
	}
	failpoint.Inject(failpoint.RaftBeforeApplySnap)
	if err := log.InstallSnapshot(fb, md); err != nil {
		return err
	}
	failpoint.Inject(failpoint.RaftAfterApplySnap)
	rc.staged = nil
	return nil
}

// Recover runs at start, before anything reads the engine: it completes an
// installation a crash interrupted, or discards an incomplete staging.
func Recover(eng storage.Engine) (installed bool, err error) {
	v, err := eng.Get(storage.KeyRaftInstall)
	if errors.Is(err, storage.ErrNotFound) {
		return false, clearStaging(eng)
	}
	if err != nil {
		return false, fmt.Errorf("raftsnap: read installation marker: %w", err)
	}
	md, err := raftlog.DecodeMetadata(storage.KeyRaftInstall, v)
	if err != nil {
		return false, err
	}
	if err := replaceLive(eng); err != nil {
		return false, err
	}
	hs, err := raftlog.ReadHardState(eng)
	if err != nil {
		return false, err
	}
	b := eng.NewBatch()
	defer b.Close()
	if err := finishBatch(b); err != nil {
		return false, err
	}
	if err := raftlog.StageSnapshotMetadata(b, md, hs); err != nil {
		return false, err
	}
	if err := b.Commit(true); err != nil {
		return false, fmt.Errorf("raftsnap: commit recovered installation: %w", err)
	}
	return true, nil
}

func clearStaging(eng storage.Engine) error {
	b := eng.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(storage.PrefixSnapStaging, storage.PrefixEnd(storage.PrefixSnapStaging)); err != nil {
		return err
	}
	if err := b.Commit(false); err != nil {
		return fmt.Errorf("raftsnap: clear staging: %w", err)
	}
	return nil
}

// replaceLive deletes the replicated state and copies the staged image in
// its place. It is idempotent: the staging stays until finishBatch.
func replaceLive(eng storage.Engine) error {
	b := eng.NewBatch()
	defer func() { b.Close() }()
	for _, sp := range replicatedSpans() {
		end := sp.end
		if end == nil {
			end = maxKey
		}
		if err := b.DeleteRange(sp.start, end); err != nil {
			return err
		}
	}
	it, err := eng.NewIter(storage.IterOptions{LowerBound: storage.PrefixSnapStaging, UpperBound: storage.PrefixEnd(storage.PrefixSnapStaging)})
	if err != nil {
		return fmt.Errorf("raftsnap: open staging iterator: %w", err)
	}
	defer it.Close()
	pending := 0
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[len(storage.PrefixSnapStaging):]
		if err := b.Set(k, it.Value()); err != nil {
			return err
		}
		pending += len(k) + len(it.Value())
		if pending >= batchBytes {
			if err := b.Commit(false); err != nil {
				return fmt.Errorf("raftsnap: commit installation: %w", err)
			}
			b.Close()
			b = eng.NewBatch()
			pending = 0
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("raftsnap: scan staging: %w", err)
	}
	if err := b.Commit(false); err != nil {
		return fmt.Errorf("raftsnap: commit installation: %w", err)
	}
	return nil
}

func finishBatch(b storage.Batch) error {
	if err := b.DeleteRange(storage.PrefixSnapStaging, storage.PrefixEnd(storage.PrefixSnapStaging)); err != nil {
		return err
	}
	return b.Delete(storage.KeyRaftInstall)
}
