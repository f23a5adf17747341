package pebble

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/metastore/metastore/internal/storage"
)

// ingestLinkSuffix names the second link Ingest hands to Pebble, which
// removes the paths it ingested: the caller's file stays, so that an
// ingestion a crash interrupted can be repeated.
const ingestLinkSuffix = ".ingesting"

// NewIngestWriter implements storage.Engine: it writes an sstable in the
// store's own format (comparer, table format, filters) holding the pairs
// and a range deletion of the span. Pebble gives every key of an ingested
// table the same sequence number, and a range deletion only hides keys
// with a lower one, so after ingestion the deletion removes what the span
// held before and none of the table's own pairs. (The deletion is added
// last, when its end is known: the table keeps range deletions in a block
// of their own, so their order relative to the pairs does not matter.)
func (e *Engine) NewIngestWriter(path string, start []byte) (storage.IngestWriter, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, storage.ErrClosed
	}
	if len(start) == 0 {
		return nil, fmt.Errorf("pebble: ingest file %s: empty span start", path)
	}
	f, err := createIngestFile(path)
	if err != nil {
		return nil, fmt.Errorf("pebble: create ingest file: %w", err)
	}
	cmp := pebble.DefaultComparer
	if e.prefixFilters {
		cmp = mvccComparer
	}
	// The per-level options (block size, filters, compression) are the ones
	// the store's own tables get; level 0 because the table's level is only
	// known once Pebble places it.
	wo := pebbleOptions(Options{}, cmp, e.valueSep).MakeWriterOptions(0, e.db.TableFormat())
	fw := &fileWritable{f: f, bw: bufio.NewWriterSize(f, 256<<10)}
	return &ingestWriter{path: path, fw: fw, w: sstable.NewWriter(fw, wo), start: bytes.Clone(start), first: true}, nil
}

// Ingest implements storage.Engine with Pebble's ingestion, which adds
// every table to the store in one version edit: a crash leaves all of them
// or none.
func (e *Engine) Ingest(paths []string) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return storage.ErrClosed
	}
	links := make([]string, 0, len(paths))
	defer func() {
		// After a successful ingestion Pebble has removed them already.
		for _, l := range links {
			_ = os.Remove(l)
		}
	}()
	for _, p := range paths {
		l := p + ingestLinkSuffix
		if err := os.Remove(l); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pebble: ingest: %w", err)
		}
		if err := os.Link(p, l); err != nil {
			return fmt.Errorf("pebble: ingest: %w", err)
		}
		links = append(links, l)
	}
	if err := e.db.Ingest(context.Background(), links); err != nil {
		return fmt.Errorf("pebble: ingest %d files into %s: %w", len(paths), e.dir, err)
	}
	return nil
}

type ingestWriter struct {
	path  string
	fw    *fileWritable
	w     *sstable.Writer
	start []byte
	last  []byte // the previous key
	first bool   // no pair yet
	done  bool
}

func (w *ingestWriter) Set(key, value []byte) error {
	if w.done {
		return fmt.Errorf("pebble: ingest file %s: %w", w.path, storage.ErrClosed)
	}
	if bytes.Compare(key, w.start) < 0 || (!w.first && bytes.Compare(key, w.last) <= 0) {
		return fmt.Errorf("pebble: ingest file %s: key %q out of order or before the span", w.path, key)
	}
	w.first = false
	w.last = append(w.last[:0], key...)
	if err := w.w.Set(key, value); err != nil {
		return fmt.Errorf("pebble: ingest file %s: %w", w.path, err)
	}
	return nil
}

func (w *ingestWriter) Finish(end []byte) error {
	if w.done {
		return fmt.Errorf("pebble: ingest file %s: %w", w.path, storage.ErrClosed)
	}
	if bytes.Compare(end, w.start) <= 0 || (!w.first && bytes.Compare(end, w.last) <= 0) {
		_ = w.Abort()
		return fmt.Errorf("pebble: ingest file %s: span end %q not above its keys", w.path, end)
	}
	w.done = true
	err := w.w.DeleteRange(w.start, end)
	if err := errors.Join(err, w.w.Close()); err != nil {
		_ = os.Remove(w.path)
		return fmt.Errorf("pebble: ingest file %s: %w", w.path, err)
	}
	if err := syncDir(filepath.Dir(w.path)); err != nil {
		return fmt.Errorf("pebble: ingest file %s: %w", w.path, err)
	}
	return nil
}

func (w *ingestWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.fw.aborted = true
	_ = w.w.Close() // fails at its first write and closes the file
	if err := os.Remove(w.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pebble: abort ingest file: %w", err)
	}
	return nil
}

var errAborted = errors.New("pebble: ingest file aborted")

// ingestBytesPerSync is how often the written part of an ingest file is
// handed to the kernel for writeback (what Pebble does for its own tables):
// the final sync then waits for little, instead of for a whole file of
// dirty pages while the caller (a snapshot stream) stands still.
const ingestBytesPerSync = 1 << 20

// createIngestFile creates path, which must not exist, for writing with
// incremental writeback.
func createIngestFile(path string) (vfs.File, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("%s: %w", path, os.ErrExist)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	return vfs.NewSyncingFile(f, vfs.SyncingFileOptions{BytesPerSync: ingestBytesPerSync}), nil
}

// fileWritable is the sstable writer's output: a buffered file synced at
// Finish, whose writes fail once the writer is aborted so that closing it
// does not write the rest of the table.
type fileWritable struct {
	f       vfs.File
	bw      *bufio.Writer
	aborted bool
}

func (fw *fileWritable) Write(p []byte) error {
	if fw.aborted {
		return errAborted
	}
	_, err := fw.bw.Write(p)
	return err
}

func (fw *fileWritable) Finish() error {
	err := fw.bw.Flush()
	if err == nil {
		err = fw.f.Sync()
	}
	return errors.Join(err, fw.f.Close())
}

func (fw *fileWritable) Abort() { _ = fw.f.Close() }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
