package snapshot

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Pack is how metastore streamed snapshots before it served etcd's format:
// kept for the tests of Unpack, which must still read such files.
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
