package raftsnap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/metastore/metastore/internal/crc32c"
)

// ErrCorrupt is wrapped by every error about a malformed or damaged image.
var ErrCorrupt = errors.New("raftsnap: corrupt snapshot stream")

// Chunk layout: type (1 byte), payload length (4 BE), CRC-32C over the
// type, the length and the payload (4 BE), payload.
const (
	chunkHeader = 'H' // 8 BE applied index, 8 BE its term
	chunkData   = 'D' // repeated: uvarint key length, key, uvarint value length, value
	chunkEnd    = 'E' // 8 BE number of keys, 8 BE number of key and value bytes

	chunkHeaderSize = 9
	// targetChunk is where the writer cuts a data chunk; one key-value pair
	// larger than that travels alone in a bigger chunk.
	targetChunk = 1 << 20
	// maxChunk bounds what the reader accepts, so a corrupt length cannot
	// make it allocate without limit.
	maxChunk = 256 << 20
)

// chunkWriter encodes chunks. A data chunk is built in buf behind room for
// its header, so that it reaches w in one Write: between processes w is
// the HTTP connection, and one write of a whole chunk costs a few system
// calls where a header and a payload written apart, or cut into pieces,
// cost several more (transport/snapshot.go).
type chunkWriter struct {
	w   io.Writer
	buf []byte // the pending data chunk: header room, then pairs; empty before the first pair
	n   int64
}

func (cw *chunkWriter) write(typ byte, payload []byte) error {
	c := make([]byte, chunkHeaderSize, chunkHeaderSize+len(payload))
	return cw.emit(typ, append(c, payload...))
}

// emit fills in the header of chunk c (header room, then payload) and
// writes it.
func (cw *chunkWriter) emit(typ byte, c []byte) error {
	c[0] = typ
	binary.BigEndian.PutUint32(c[1:5], uint32(len(c)-chunkHeaderSize))
	crc := crc32c.Update(crc32c.Checksum(c[:5]), c[chunkHeaderSize:])
	binary.BigEndian.PutUint32(c[5:chunkHeaderSize], crc)
	if _, err := cw.w.Write(c); err != nil {
		return err
	}
	cw.n += int64(len(c))
	return nil
}

// add appends one pair to the pending data chunk, flushing it when full.
func (cw *chunkWriter) add(k, v []byte) error {
	if len(cw.buf) == 0 {
		if cw.buf == nil {
			cw.buf = make([]byte, 0, chunkHeaderSize+targetChunk+2*binary.MaxVarintLen64+len(k)+len(v))
		}
		cw.buf = cw.buf[:chunkHeaderSize]
	}
	cw.buf = binary.AppendUvarint(cw.buf, uint64(len(k)))
	cw.buf = append(cw.buf, k...)
	cw.buf = binary.AppendUvarint(cw.buf, uint64(len(v)))
	cw.buf = append(cw.buf, v...)
	if len(cw.buf)-chunkHeaderSize >= targetChunk {
		return cw.flush()
	}
	return nil
}

func (cw *chunkWriter) flush() error {
	if len(cw.buf) <= chunkHeaderSize {
		return nil
	}
	err := cw.emit(chunkData, cw.buf)
	cw.buf = cw.buf[:0]
	return err
}

type chunkReader struct {
	r   *bufio.Reader
	buf []byte
}

func newChunkReader(r io.Reader) *chunkReader {
	if br, ok := r.(*bufio.Reader); ok {
		return &chunkReader{r: br}
	}
	return &chunkReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next chunk; its payload is valid until the next call.
func (cr *chunkReader) next() (byte, []byte, error) {
	var hdr [chunkHeaderSize]byte
	if _, err := io.ReadFull(cr.r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the end chunk marks the end
		}
		return 0, nil, fmt.Errorf("raftsnap: read chunk: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[1:5])
	if n > maxChunk {
		return 0, nil, fmt.Errorf("%w: chunk of %d bytes", ErrCorrupt, n)
	}
	if cap(cr.buf) < int(n) {
		cr.buf = make([]byte, n)
	}
	p := cr.buf[:n]
	if _, err := io.ReadFull(cr.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("raftsnap: read chunk: %w", err)
	}
	crc := crc32c.Update(crc32c.Checksum(hdr[:5]), p)
	if want := binary.BigEndian.Uint32(hdr[5:]); crc != want {
		return 0, nil, fmt.Errorf("%w: chunk checksum %08x, want %08x", ErrCorrupt, crc, want)
	}
	switch hdr[0] {
	case chunkHeader, chunkData, chunkEnd:
	default:
		return 0, nil, fmt.Errorf("%w: unknown chunk type %q", ErrCorrupt, hdr[0])
	}
	return hdr[0], p, nil
}

// pairs calls fn for each key-value pair of a data chunk.
func pairs(p []byte, fn func(k, v []byte) error) error {
	for len(p) > 0 {
		kl, n := binary.Uvarint(p)
		if n <= 0 || uint64(len(p)-n) < kl {
			return fmt.Errorf("%w: truncated key in data chunk", ErrCorrupt)
		}
		k := p[n : n+int(kl)]
		p = p[n+int(kl):]
		vl, n := binary.Uvarint(p)
		if n <= 0 || uint64(len(p)-n) < vl {
			return fmt.Errorf("%w: truncated value in data chunk", ErrCorrupt)
		}
		v := p[n : n+int(vl)]
		p = p[n+int(vl):]
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}
