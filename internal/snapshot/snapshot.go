package snapshot

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrCorrupt is returned for a snapshot file whose checksum or archive is
// wrong.
var ErrCorrupt = errors.New("snapshot: corrupt snapshot file")

const blockSize = 512

// Unpack checks the SHA-256 at the end of the snapshot file at path and
// extracts the archive into dest, which must not exist yet.
func Unpack(path, dest string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("snapshot: read %s: %w", path, err)
	}
	if len(data) < sha256.Size || (len(data)-sha256.Size)%blockSize != 0 {
		return fmt.Errorf("%w: %s has %d bytes, not an archive followed by a SHA-256", ErrCorrupt, path, len(data))
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return fmt.Errorf("%w: %s: sha256 mismatch", ErrCorrupt, path)
	}
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("snapshot: %s already exists; restore needs a new directory", dest)
	}
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return fmt.Errorf("snapshot: create %s: %w", dest, err)
	}
	tr := tar.NewReader(bytes.NewReader(body))
	files := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
		}
		name := filepath.FromSlash(hdr.Name)
		if hdr.Typeflag != tar.TypeReg || filepath.IsAbs(name) || strings.HasPrefix(filepath.Clean(name), "..") {
			return fmt.Errorf("%w: %s: unexpected entry %q", ErrCorrupt, path, hdr.Name)
		}
		target := filepath.Join(dest, name)
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("snapshot: create %s: %w", target, err)
		}
		_, cerr := io.Copy(f, tr)
		serr := f.Sync()
		if err := errors.Join(cerr, serr, f.Close()); err != nil {
			return fmt.Errorf("snapshot: write %s: %w", target, err)
		}
		files++
	}
	if files == 0 {
		return fmt.Errorf("%w: %s holds no files", ErrCorrupt, path)
	}
	return nil
}
