package framework

import (
	"fmt"
	"net"
	"sync"
)

// handedOut remembers ports already given to a member of this test process:
// the kernel may return a just-closed ephemeral port again, and two members
// must never be told to bind the same one.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreePort returns a 127.0.0.1 TCP port that is free now and was not handed
// out before by this process.
func FreePort() (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = make(map[int]bool)
	}
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return 0, fmt.Errorf("find free port: %w", err)
		}
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("find free port: no new port after 100 tries")
}
