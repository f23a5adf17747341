package memory

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/metastore/metastore/internal/crc32c"
	"github.com/metastore/metastore/internal/storage"
)

// The ingest file format (the engine's own; nothing else reads it):
//
//	magic "metastore-memory-ingest-v1\n"
//	span start: uvarint len(start) | start
//	records: uvarint len(key) | key | uvarint len(value) | value
//	span end: uvarint len(end) | end
//	trailer: 8 bytes BE record count | 4 bytes BE CRC-32C of all preceding bytes
var ingestMagic = []byte("metastore-memory-ingest-v1\n")

// NewIngestWriter implements storage.Engine. The memory engine has no files
// of its own: Ingest reads the pairs back and applies them in one batch.
func (e *Engine) NewIngestWriter(path string, start []byte) (storage.IngestWriter, error) {
	if e.closed.Load() {
		return nil, storage.ErrClosed
	}
	if len(start) == 0 {
		return nil, fmt.Errorf("memory: ingest file %s: empty span start", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("memory: create ingest file: %w", err)
	}
	crc := crc32c.New()
	w := &ingestWriter{path: path, f: f, crc: crc, w: bufio.NewWriterSize(io.MultiWriter(f, crc), 256<<10),
		last: bytes.Clone(start)}
	w.write(ingestMagic)
	w.chunk(start)
	if w.err != nil {
		_ = w.Abort()
		return nil, fmt.Errorf("memory: ingest file %s: %w", path, w.err)
	}
	return w, nil
}

type ingestWriter struct {
	path  string
	f     *os.File
	crc   hash.Hash32
	w     *bufio.Writer
	err   error  // the first write error
	last  []byte // the span's start until the first Set
	count uint64
	done  bool
}

func (w *ingestWriter) write(p []byte) {
	if w.err == nil {
		_, w.err = w.w.Write(p)
	}
}

// chunk writes p preceded by its length.
func (w *ingestWriter) chunk(p []byte) {
	var hdr [binary.MaxVarintLen64]byte
	w.write(hdr[:binary.PutUvarint(hdr[:], uint64(len(p)))])
	w.write(p)
}

func (w *ingestWriter) Set(key, value []byte) error {
	if w.done {
		return fmt.Errorf("memory: ingest file %s: %w", w.path, storage.ErrClosed)
	}
	c := bytes.Compare(key, w.last)
	if c < 0 || (c == 0 && w.count > 0) {
		return fmt.Errorf("memory: ingest file %s: key %q out of order or before the span", w.path, key)
	}
	w.last = append(w.last[:0], key...)
	w.chunk(key)
	w.chunk(value)
	w.count++
	if w.err != nil {
		return fmt.Errorf("memory: ingest file %s: %w", w.path, w.err)
	}
	return nil
}

func (w *ingestWriter) Finish(end []byte) error {
	if w.done {
		return fmt.Errorf("memory: ingest file %s: %w", w.path, storage.ErrClosed)
	}
	if bytes.Compare(end, w.last) <= 0 {
		_ = w.Abort()
		return fmt.Errorf("memory: ingest file %s: span end %q not above its keys", w.path, end)
	}
	w.done = true
	w.chunk(end)
	w.write(binary.BigEndian.AppendUint64(nil, w.count))
	if w.err == nil {
		w.err = w.w.Flush()
	}
	if w.err == nil {
		_, w.err = w.f.Write(binary.BigEndian.AppendUint32(nil, w.crc.Sum32()))
	}
	if w.err == nil {
		w.err = w.f.Sync()
	}
	w.err = errors.Join(w.err, w.f.Close())
	if w.err == nil {
		w.err = syncDir(filepath.Dir(w.path))
	}
	if w.err != nil {
		_ = os.Remove(w.path)
		return fmt.Errorf("memory: ingest file %s: %w", w.path, w.err)
	}
	return nil
}

func (w *ingestWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	_ = w.f.Close()
	if err := os.Remove(w.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("memory: abort ingest file: %w", err)
	}
	return nil
}

// Ingest implements storage.Engine: every file's range deletion and pairs
// are applied in one batch, so they become visible together.
func (e *Engine) Ingest(paths []string) error {
	type span struct{ start, end []byte }
	var ops []op
	var spans []span
	for _, p := range paths {
		start, end, pairs, err := readIngestFile(p)
		if err != nil {
			return err
		}
		spans = append(spans, span{start, end})
		ops = append(ops, op{kind: opDeleteRange, key: start, value: end})
		ops = append(ops, pairs...)
	}
	slices.SortFunc(spans, func(a, b span) int { return bytes.Compare(a.start, b.start) })
	for i := 1; i < len(spans); i++ {
		if bytes.Compare(spans[i-1].end, spans[i].start) > 0 {
			return fmt.Errorf("memory: ingest: spans [%q, %q) and [%q, %q) overlap",
				spans[i-1].start, spans[i-1].end, spans[i].start, spans[i].end)
		}
	}
	return e.apply(ops)
}

// readIngestFile checks an ingest file and returns its span and its pairs
// as Set operations (sharing the file's buffer).
func readIngestFile(path string) (start, end []byte, pairs []op, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("memory: ingest: %w", err)
	}
	corrupt := func(why string) error {
		return fmt.Errorf("memory: ingest %s: %w: %s", path, ErrCorrupt, why)
	}
	if len(data) < len(ingestMagic)+12 || !bytes.Equal(data[:len(ingestMagic)], ingestMagic) {
		return nil, nil, nil, corrupt("bad header or too short")
	}
	body, sum := data[:len(data)-4], data[len(data)-4:]
	if crc32c.Checksum(body) != binary.BigEndian.Uint32(sum) {
		return nil, nil, nil, corrupt("checksum mismatch")
	}
	want := binary.BigEndian.Uint64(body[len(body)-8:])
	recs := body[len(ingestMagic) : len(body)-8]
	// The chunks: the span's start, key and value of each pair, the end.
	var chunks [][]byte
	// Each chunk is at least one byte, which bounds the loop.
	for len(recs) > 0 {
		c, rest, ok := readChunk(recs)
		if !ok {
			return nil, nil, nil, corrupt("bad record")
		}
		chunks, recs = append(chunks, c), rest
	}
	if len(chunks) < 2 || len(chunks)%2 != 0 {
		return nil, nil, nil, corrupt("bad record count")
	}
	start, end = chunks[0], chunks[len(chunks)-1]
	for i := 1; i < len(chunks)-1; i += 2 {
		pairs = append(pairs, op{kind: opSet, key: chunks[i], value: chunks[i+1]})
	}
	if uint64(len(pairs)) != want {
		return nil, nil, nil, corrupt(fmt.Sprintf("record count %d, trailer says %d", len(pairs), want))
	}
	return start, end, pairs, nil
}
