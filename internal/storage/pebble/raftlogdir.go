package pebble

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// RaftLogDirName is the directory that holds the Raft log's segment files
// (internal/raftwal): in the store's directory, or in --wal-dir when one is
// given, since the log is then the one file synced on every write (etcd's
// --wal-dir holds its WAL for the same reason). Pebble ignores it: it only
// opens files whose names it made.
const RaftLogDirName = "raftwal"

// placeRaftLog makes sure the Raft log's directory is at cur before anyone
// reads it: a run with another --wal-dir (or none) than the last one finds
// the log where the last run left it (one of others) and moves it, with a
// rename, or a synced copy renamed into place and then the old one removed
// when the two are on different file systems. Every other copy is removed
// once cur holds the log, so that a later run can never pick a stale one:
// moves happen at open, before any write, so copies left by a crash during
// a move are identical to the moved one.
func placeRaftLog(cur string, others []string) error {
	if !dirExists(cur) {
		for _, o := range others {
			if o == cur || !dirExists(o) {
				continue
			}
			if err := moveDir(o, cur); err != nil {
				return fmt.Errorf("pebble: move the raft log from %s to %s: %w", o, cur, err)
			}
			break
		}
	}
	for _, o := range others {
		if o == cur {
			continue
		}
		if err := os.RemoveAll(o); err != nil {
			return fmt.Errorf("pebble: remove the raft log's old copy %s: %w", o, err)
		}
	}
	return nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// moveDir moves directory from to to (which must not exist).
func moveDir(from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	if err := os.Rename(from, to); err == nil {
		return syncDirs(filepath.Dir(to), filepath.Dir(from))
	} else if !isCrossDevice(err) {
		return err
	}
	tmp := to + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(from, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
			return err
		}
	}
	if err := syncDirs(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, to); err != nil {
		return err
	}
	if err := syncDirs(filepath.Dir(to)); err != nil {
		return err
	}
	if err := os.RemoveAll(from); err != nil {
		return err
	}
	return syncDirs(filepath.Dir(from))
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	if err == nil {
		err = dst.Sync()
	}
	return errors.Join(err, dst.Close())
}

func syncDirs(dirs ...string) error {
	for _, d := range dirs {
		f, err := os.Open(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = errors.Join(f.Sync(), f.Close())
		if err != nil {
			return err
		}
	}
	return nil
}
