package server

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// socketOptions sets etcd's --socket-reuse-port (SO_REUSEPORT: another
// process may bind the same port, e.g. a replacement started before the old
// one exits) and --socket-reuse-address (SO_REUSEADDR, which Go already
// sets on TCP listeners; setting it again keeps the flag's promise
// explicit) on TCP listeners.
func socketOptions(reusePort, reuseAddr bool) func(network, address string, c syscall.RawConn) error {
	if !reusePort && !reuseAddr {
		return nil
	}
	return func(network, _ string, c syscall.RawConn) error {
		if network != "tcp" && network != "tcp4" && network != "tcp6" {
			return nil
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			if reuseAddr {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			}
			if serr == nil && reusePort {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}
