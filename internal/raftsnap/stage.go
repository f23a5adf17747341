package raftsnap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/crc32c"
	"github.com/metastore/metastore/internal/failpoint"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage"
)

// targetFile is where the receiver cuts a staged file: files of this size
// are what Pebble's compactions handle well at the bottom of the tree (a
// single file of many GiB would be rewritten whole by any compaction that
// touches it).
const targetFile = 128 << 20

// fileSuffix ends the names of staged files (NNNNNN.sst, in key order).
const fileSuffix = ".sst"

// Receiver stages received images and installs them. Staging and
// installation exclude each other.
type Receiver struct {
	eng storage.Engine
	// dir holds the staged files: only the receiver writes there.
	dir string
	// fileBytes is targetFile; tests lower it to cut many files.
	fileBytes int
	received  atomic.Uint64 // bytes staged, ever: shows progress

	mu     sync.Mutex               // guards staged; held through staging and installation
	staged *raftpb.SnapshotMetadata // the complete image in dir, if any
}

// NewReceiver returns a Receiver on eng that stages images in dir, a
// directory of its own on the same file system as the engine (it is
// created when needed). Call Recover first at start.
func NewReceiver(eng storage.Engine, dir string) *Receiver {
	return &Receiver{eng: eng, dir: dir, fileBytes: targetFile}
}

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

// Stage reads the image of md from r into files the engine can ingest,
// replacing any earlier staged image, and checks every chunk, the header
// against md, the key order and the totals in the end chunk. The live
// state is not touched.
func (rc *Receiver) Stage(r io.Reader, md *raftpb.SnapshotMetadata) (err error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.staged = nil
	if err := resetDir(rc.dir); err != nil {
		return err
	}
	fw := &fileWriter{eng: rc.eng, dir: rc.dir, spans: replicatedSpans(), target: rc.fileBytes}
	defer func() {
		if err != nil {
			fw.abort()
			_ = os.RemoveAll(rc.dir)
		}
	}()
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
	var keys, nbytes uint64
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
			if err := fw.add(k, v); err != nil {
				return err
			}
			keys++
			nbytes += uint64(len(k) + len(v))
			rc.received.Add(uint64(len(k) + len(v)))
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := fw.finish(); err != nil {
		return err
	}
	if err := writeComplete(rc.dir, md, fw.n); err != nil {
		return err
	}
	rc.staged = proto.Clone(md).(*raftpb.SnapshotMetadata)
	return nil
}

// fileWriter turns the image's pairs, which must arrive in strictly
// ascending key order, into ingest files: each covers a part of one
// replicated span and replaces it, and together they cover every span,
// so that ingesting them all replaces the whole replicated state (a span
// the image holds no key of gets a file with no pair, which only deletes).
type fileWriter struct {
	eng    storage.Engine
	dir    string
	spans  []span
	target int                  // bytes of pairs after which a file is cut
	si     int                  // the span w covers part of
	w      storage.IngestWriter // nil before the first file
	start  []byte               // where w's part of the span starts
	size   int                  // bytes of pairs in w
	last   []byte               // the previous key
	n      int                  // files started
}

// add writes one pair, after the checks that make the files a faithful
// copy of the leader's replicated state.
func (fw *fileWriter) add(k, v []byte) error {
	if fw.last != nil && bytes.Compare(k, fw.last) <= 0 {
		return fmt.Errorf("%w: keys out of order", ErrCorrupt)
	}
	fw.last = append(fw.last[:0], k...)
	if fw.w == nil {
		if err := fw.open(fw.spans[0].start); err != nil {
			return err
		}
	}
	// Keys ascend, so the spans are visited in order; those skipped get
	// their (empty) files on the way. A key past the last span's end or
	// before its span's start (in a gap between spans) is not replicated.
	for fw.spans[fw.si].end != nil && bytes.Compare(k, fw.spans[fw.si].end) >= 0 {
		if err := fw.next(); err != nil {
			return err
		}
	}
	if sp := fw.spans[fw.si]; bytes.Compare(k, sp.start) < 0 || bytes.Compare(k, spanEnd(sp)) >= 0 {
		return fmt.Errorf("%w: key %q is not part of the replicated state", ErrCorrupt, k)
	}
	if fw.size >= fw.target && !bytes.Equal(k, fw.start) {
		if err := fw.close(k); err != nil {
			return err
		}
		if err := fw.open(k); err != nil {
			return err
		}
	}
	fw.size += len(k) + len(v)
	if err := fw.w.Set(k, v); err != nil {
		return fmt.Errorf("raftsnap: stage: %w", err)
	}
	return nil
}

func (fw *fileWriter) open(start []byte) error {
	fw.n++
	w, err := fw.eng.NewIngestWriter(filepath.Join(fw.dir, fmt.Sprintf("%06d%s", fw.n, fileSuffix)), start)
	if err != nil {
		return fmt.Errorf("raftsnap: stage: %w", err)
	}
	fw.w, fw.start, fw.size = w, append(fw.start[:0], start...), 0
	return nil
}

// close finishes the current file, whose part of the span ends at end.
func (fw *fileWriter) close(end []byte) error {
	w := fw.w
	fw.w = nil
	if err := w.Finish(end); err != nil {
		return fmt.Errorf("raftsnap: stage: %w", err)
	}
	return nil
}

// next finishes the current span and starts a file for the following one.
func (fw *fileWriter) next() error {
	if err := fw.close(spanEnd(fw.spans[fw.si])); err != nil {
		return err
	}
	fw.si++
	return fw.open(fw.spans[fw.si].start)
}

// finish covers the spans after the last key and finishes the last file.
func (fw *fileWriter) finish() error {
	if fw.w == nil {
		if err := fw.open(fw.spans[0].start); err != nil {
			return err
		}
	}
	for fw.si < len(fw.spans)-1 {
		if err := fw.next(); err != nil {
			return err
		}
	}
	return fw.close(spanEnd(fw.spans[fw.si]))
}

func (fw *fileWriter) abort() {
	if fw.w != nil {
		_ = fw.w.Abort()
		fw.w = nil
	}
}

func spanEnd(sp span) []byte {
	if sp.end == nil {
		return maxKey
	}
	return sp.end
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
	if err := ingestStaged(rc.eng, rc.dir, md); err != nil {
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
	// The marker is gone: the files are not needed any more (Recover
	// removes them if a crash comes first).
	if err := os.RemoveAll(rc.dir); err != nil {
		return fmt.Errorf("raftsnap: remove staged image: %w", err)
	}
	return nil
}

// Recover runs at start, before anything reads the engine: it completes an
// installation a crash interrupted, or discards an incomplete staging.
// dir is the Receiver's staging directory.
func Recover(eng storage.Engine, dir string) (installed bool, err error) {
	v, err := eng.Get(storage.KeyRaftInstall)
	if errors.Is(err, storage.ErrNotFound) {
		if err := os.RemoveAll(dir); err != nil {
			return false, fmt.Errorf("raftsnap: discard staged image: %w", err)
		}
		return false, clearLegacyStaging(eng)
	}
	if err != nil {
		return false, fmt.Errorf("raftsnap: read installation marker: %w", err)
	}
	md, err := raftlog.DecodeMetadata(storage.KeyRaftInstall, v)
	if err != nil {
		return false, err
	}
	legacy, err := hasLegacyStaging(eng, dir)
	if err != nil {
		return false, err
	}
	if legacy {
		err = replaceLiveFromLegacyStaging(eng)
	} else {
		err = ingestStaged(eng, dir, md)
	}
	if err != nil {
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
	if err := os.RemoveAll(dir); err != nil {
		return false, fmt.Errorf("raftsnap: remove staged image: %w", err)
	}
	return true, nil
}

// ingestStaged replaces the replicated state with the staged files of
// md's image, after checking that they are all there. It is idempotent:
// the files stay until the installation is finished.
func ingestStaged(eng storage.Engine, dir string, md *raftpb.SnapshotMetadata) error {
	files, err := stagedFiles(dir)
	if err != nil {
		return err
	}
	if err := checkComplete(dir, md, len(files)); err != nil {
		return err
	}
	if err := eng.Ingest(files); err != nil {
		return fmt.Errorf("raftsnap: ingest staged image: %w", err)
	}
	return nil
}

// stagedFiles lists the staged files in key order (their names' order).
func stagedFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("raftsnap: list staged image: %w", err)
	}
	var files []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), fileSuffix) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(files)
	return files, nil
}

// resetDir leaves dir existing and empty, durably: the files written in
// it sync their own entries, and this syncs dir's entry in its parent.
func resetDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("raftsnap: clear staging directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("raftsnap: create staging directory: %w", err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("raftsnap: create staging directory: %w", err)
	}
	return nil
}

// completeFile, written last and synced, says that the staging holds every
// file of an image: its index, term and file count, with a CRC-32C. The
// marker is only written after it, and the files are ingested only if it
// matches them, so that a staging directory lost or damaged by a machine
// crash can never be installed as an empty or partial image.
const completeFile = "COMPLETE"

func writeComplete(dir string, md *raftpb.SnapshotMetadata, files int) error {
	b := binary.BigEndian.AppendUint64(nil, md.GetIndex())
	b = binary.BigEndian.AppendUint64(b, md.GetTerm())
	b = binary.BigEndian.AppendUint64(b, uint64(files))
	b = binary.BigEndian.AppendUint32(b, crc32c.Checksum(b))
	f, err := os.OpenFile(filepath.Join(dir, completeFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("raftsnap: stage: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err := errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("raftsnap: stage: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("raftsnap: stage: %w", err)
	}
	return nil
}

func checkComplete(dir string, md *raftpb.SnapshotMetadata, files int) error {
	b, err := os.ReadFile(filepath.Join(dir, completeFile))
	if err != nil {
		return fmt.Errorf("raftsnap: staged image of index %d is incomplete: %w", md.GetIndex(), err)
	}
	if len(b) != 28 || crc32c.Checksum(b[:24]) != binary.BigEndian.Uint32(b[24:]) {
		return fmt.Errorf("%w: staged image's %s is damaged", ErrCorrupt, completeFile)
	}
	idx, term, n := binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(b[16:])
	if idx != md.GetIndex() || term != md.GetTerm() || n != uint64(files) {
		return fmt.Errorf("%w: staging holds %d files of the image at index %d term %d, want %d files of index %d term %d",
			ErrCorrupt, files, md.GetIndex(), md.GetTerm(), n, idx, term)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

func finishBatch(b storage.Batch) error {
	// A staging left under s/ by an older version (see legacy.go) goes too.
	if err := b.DeleteRange(storage.PrefixSnapStaging, storage.PrefixEnd(storage.PrefixSnapStaging)); err != nil {
		return err
	}
	return b.Delete(storage.KeyRaftInstall)
}
