package memory

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/metastore/metastore/internal/crc32c"
)

// CheckpointFile is the name of the file Checkpoint writes inside its dir.
const CheckpointFile = "memory.dump"

// The dump format:
//
//	magic "metastore-memory-v1\n"
//	records: uvarint len(key) | key | uvarint len(value) | value
//	trailer: 8 bytes BE record count | 4 bytes BE CRC-32C of all preceding bytes
//
// The count in the trailer lets Load tell a truncated file from a short one
// whose CRC happens to match.
var magic = []byte("metastore-memory-v1\n")

// ErrCorrupt is returned (wrapped) by Load when the dump fails its checks.
var ErrCorrupt = errors.New("memory: corrupt checkpoint")

func writeCheckpoint(dir string, t *tree) (err error) {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("memory: checkpoint %s: %w", dir, os.ErrExist)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("memory: checkpoint %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("memory: checkpoint %s: %w", dir, err)
	}
	path := filepath.Join(dir, CheckpointFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("memory: checkpoint %s: %w", dir, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("memory: checkpoint %s: %w", dir, cerr)
		}
	}()
	crc := crc32c.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, crc), 1<<20)
	var hdr [2 * binary.MaxVarintLen64]byte
	var count uint64
	if _, err := w.Write(magic); err != nil {
		return fmt.Errorf("memory: checkpoint %s: %w", dir, err)
	}
	var werr error
	t.Ascend(func(it item) bool {
		n := binary.PutUvarint(hdr[:], uint64(len(it.key)))
		if _, werr = w.Write(hdr[:n]); werr != nil {
			return false
		}
		if _, werr = w.Write(it.key); werr != nil {
			return false
		}
		n = binary.PutUvarint(hdr[:], uint64(len(it.value)))
		if _, werr = w.Write(hdr[:n]); werr != nil {
			return false
		}
		if _, werr = w.Write(it.value); werr != nil {
			return false
		}
		count++
		return true
	})
	if werr != nil {
		return fmt.Errorf("memory: checkpoint %s: %w", dir, werr)
	}
	binary.BigEndian.PutUint64(hdr[:8], count)
	if _, err := w.Write(hdr[:8]); err != nil {
		return fmt.Errorf("memory: checkpoint %s: %w", dir, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("memory: checkpoint %s: %w", dir, err)
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc.Sum32())
	if _, err := f.Write(sum[:]); err != nil {
		return fmt.Errorf("memory: checkpoint %s: %w", dir, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("memory: checkpoint %s: %w", dir, err)
	}
	// The file's directory entry must be durable too.
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("memory: checkpoint %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("memory: checkpoint %s: sync dir: %w", dir, err)
	}
	return nil
}

// Load returns a new engine holding the contents of the checkpoint in dir.
// A missing file, a truncated file or a checksum mismatch is an error
// (wrapping ErrCorrupt for the last two).
func Load(dir string) (*Engine, error) {
	path := filepath.Join(dir, CheckpointFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("memory: load %s: %w", dir, err)
	}
	corrupt := func(why string) error {
		return fmt.Errorf("memory: load %s: %w: %s", path, ErrCorrupt, why)
	}
	if len(data) < len(magic)+12 || !bytes.Equal(data[:len(magic)], magic) {
		return nil, corrupt("bad header or too short")
	}
	body, sum := data[:len(data)-4], data[len(data)-4:]
	if crc32c.Checksum(body) != binary.BigEndian.Uint32(sum) {
		return nil, corrupt("checksum mismatch")
	}
	want := binary.BigEndian.Uint64(body[len(body)-8:])
	recs := body[len(magic) : len(body)-8]
	e := New()
	var count uint64
	// Each record is at least two bytes, which bounds the loop.
	for len(recs) > 0 {
		key, rest, ok := readChunk(recs)
		if !ok {
			return nil, corrupt("bad key record")
		}
		value, rest, ok := readChunk(rest)
		if !ok {
			return nil, corrupt("bad value record")
		}
		recs = rest
		// The file buffer stays alive as the backing store of every item:
		// one allocation instead of one per key.
		if _, dup := e.live.ReplaceOrInsert(item{key: key, value: value}); dup {
			return nil, corrupt("duplicate key")
		}
		e.size += int64(len(key) + len(value))
		count++
	}
	if count != want {
		return nil, corrupt(fmt.Sprintf("record count %d, trailer says %d", count, want))
	}
	return e, nil
}

func readChunk(b []byte) (chunk, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, nil, false
	}
	end := w + int(n)
	return b[w:end:end], b[end:], true
}
