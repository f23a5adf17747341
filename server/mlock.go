package server

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// lockMemory is etcd's --memory-mlock: etcd locks bbolt's mmap so that
// the data set is never paged out; our data lives in the Go heap and
// Pebble's block cache instead, so the whole process is locked, now and as
// it grows. Failing (no CAP_IPC_LOCK, RLIMIT_MEMLOCK too low) stops the
// start: the operator asked for a guarantee that cannot be given.
func lockMemory() error {
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE); err != nil {
		return fmt.Errorf("server: --memory-mlock: mlockall: %w (needs CAP_IPC_LOCK or a high enough RLIMIT_MEMLOCK)", err)
	}
	return nil
}
