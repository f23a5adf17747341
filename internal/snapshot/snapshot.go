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

// Pack streams dir's regular files as a tar archive. size is the exact
// number of bytes the reader yields, known up front because the Snapshot
// RPC reports the remaining bytes in every message.
func Pack(dir string) (r io.ReadCloser, size int64, err error) {
	var files []string
	var sizes []int64
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		files = append(files, rel)
		sizes = append(sizes, info.Size())
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot: list %s: %w", dir, err)
	}
	for _, s := range sizes {
		size += blockSize + (s+blockSize-1)/blockSize*blockSize
	}
	size += 2 * blockSize // end-of-archive marker
	// tar.Writer pads the archive to a 10 KiB record only if asked; it
	// writes exactly the two zero blocks, so size is exact.
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		for i, rel := range files {
			if err := addFile(tw, filepath.Join(dir, rel), rel, sizes[i]); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(tw.Close())
	}()
	return pr, size, nil
}

func addFile(tw *tar.Writer, path, name string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("snapshot: open %s: %w", path, err)
	}
	defer f.Close()
	hdr := &tar.Header{Name: filepath.ToSlash(name), Mode: 0o600, Size: size, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("snapshot: header of %s: %w", name, err)
	}
	if _, err := io.CopyN(tw, f, size); err != nil {
		return fmt.Errorf("snapshot: copy %s: %w", name, err)
	}
	return nil
}

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
