package pebble

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/wal"
)

// walDirFile, in the store's directory, names the directory that held the
// write-ahead log on the last successful open ("" for the store's own), so
// that a run with another --wal-dir (or none) still replays the logs left
// there instead of refusing to open or, worse, missing acknowledged writes.
const walDirFile = "METASTORE-WAL-DIR"

func setWALDirs(po *pebble.Options, dir, walDir string) error {
	if walDir != "" {
		abs, err := filepath.Abs(walDir)
		if err != nil {
			return fmt.Errorf("pebble: wal dir %s: %w", walDir, err)
		}
		if err := checkWALDir(abs); err != nil {
			return err
		}
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return fmt.Errorf("pebble: create wal dir %s: %w", abs, err)
		}
		po.WALDir = abs
	}
	prev, err := os.ReadFile(filepath.Join(dir, walDirFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pebble: read %s: %w", walDirFile, err)
	}
	current := po.WALDir
	for _, d := range []string{string(prev), dir} {
		if d == "" || d == current || (d == dir && current == "") {
			continue
		}
		if _, err := os.Stat(d); err != nil {
			continue // nothing to recover from a directory that is gone
		}
		po.WALRecoveryDirs = append(po.WALRecoveryDirs, wal.Dir{FS: po.FS, Dirname: d})
	}
	return nil
}

// checkWALDir refuses a directory holding anything but Pebble logs, so
// that a mistyped --wal-dir (an etcd member's wal directory, say) is never
// mixed with ours.
func checkWALDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pebble: wal dir %s: %w", dir, err)
	}
	for _, e := range entries {
		if name := e.Name(); !strings.HasSuffix(name, ".log") && name != "LOCK" {
			return fmt.Errorf("pebble: wal dir %s holds %q, which is not a metastore write-ahead log", dir, name)
		}
	}
	return nil
}

// recordWALDir notes where the log now lives, atomically: a crash leaves
// either the old record or the new one.
func recordWALDir(dir, walDir string) error {
	if walDir != "" {
		abs, err := filepath.Abs(walDir)
		if err != nil {
			return err
		}
		walDir = abs
	}
	path := filepath.Join(dir, walDirFile)
	if cur, err := os.ReadFile(path); err == nil && string(cur) == walDir {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(walDir), 0o600); err != nil {
		return fmt.Errorf("pebble: record wal dir: %w", err)
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		if d, derr := os.Open(dir); derr == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("pebble: record wal dir: %w", err)
	}
	return nil
}
