package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/crc32c"
)

const frameHeaderSize = 8

// errCorrupt marks a frame that failed validation; the stream carrying it
// cannot be trusted any further.
var errCorrupt = errors.New("transport: corrupt frame")

// appendFrame appends m as one frame to buf.
func appendFrame(buf []byte, m *raftpb.Message) ([]byte, error) {
	start := len(buf)
	buf = append(buf, make([]byte, frameHeaderSize)...)
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, m)
	if err != nil {
		return buf[:start], fmt.Errorf("transport: encode %s: %w", m.GetType(), err)
	}
	n := len(buf) - start - frameHeaderSize
	if uint64(n) > uint64(^uint32(0)) {
		return buf[:start], fmt.Errorf("transport: %s of %d bytes is too large to frame", m.GetType(), n)
	}
	binary.BigEndian.PutUint32(buf[start:], uint32(n))
	// The length is covered too: a corrupt length would otherwise misalign
	// every later frame before a payload check could notice.
	crc := crc32c.Update(crc32c.Checksum(buf[start:start+4]), buf[start+frameHeaderSize:])
	binary.BigEndian.PutUint32(buf[start+4:], crc)
	return buf, nil
}

// frameReader decodes frames from a stream.
type frameReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

func newFrameReader(r io.Reader, maxSize int) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64<<10), max: maxSize}
}

// next decodes the next frame into m and returns its size on the wire. It
// returns io.EOF at a clean end between frames, and an error wrapping
// errCorrupt when a frame fails validation.
func (fr *frameReader) next(m *raftpb.Message) (int, error) {
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return 0, err // io.EOF only when no byte of the header arrived
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if uint64(n) > uint64(fr.max) {
		return 0, fmt.Errorf("%w: length %d exceeds the limit of %d bytes", errCorrupt, n, fr.max)
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	payload := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	crc := crc32c.Update(crc32c.Checksum(hdr[:4]), payload)
	if want := binary.BigEndian.Uint32(hdr[4:]); crc != want {
		return 0, fmt.Errorf("%w: checksum %08x, want %08x", errCorrupt, crc, want)
	}
	// Unmarshal copies bytes fields, so the buffer can be reused.
	if err := proto.Unmarshal(payload, m); err != nil {
		return 0, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	return frameHeaderSize + int(n), nil
}
