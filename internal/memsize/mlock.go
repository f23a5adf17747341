package memsize

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// LockMemory is etcd's --memory-mlock: etcd locks bbolt's mmap so that
// the data set is never paged out; our data lives in the Go heap and
// Pebble's block cache instead, so the whole process is locked, now and as
// it grows. Failing (no CAP_IPC_LOCK, RLIMIT_MEMLOCK too low) stops the
// start: the operator asked for a guarantee that cannot be given.
func LockMemory() error {
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE); err != nil {
		return fmt.Errorf("--memory-mlock: mlockall: %w (needs CAP_IPC_LOCK or a high enough RLIMIT_MEMLOCK)", err)
	}
	return nil
}
