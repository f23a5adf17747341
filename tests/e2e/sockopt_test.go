package e2e

import (
	"context"
	"net"
	"net/url"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/metastore/metastore/tests/framework"
)

// TestSocketReusePort: with --socket-reuse-port another process may bind
// the member's client port too (SO_REUSEPORT on both sides); without it
// the port is the member's alone.
func TestSocketReusePort(t *testing.T) {
	bindSame := func(m *framework.Member) error {
		u, err := url.Parse(m.ClientURL)
		check(t, "client URL", err)
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return err
			}
			return serr
		}}
		l, err := lc.Listen(context.Background(), "tcp", u.Host)
		if err == nil {
			l.Close()
		}
		return err
	}

	plain := framework.Start(t, framework.Options{Name: "plain"})
	if err := bindSame(plain); err == nil {
		t.Fatal("bound the client port of a member started without --socket-reuse-port")
	}
	plain.Stop()

	m := framework.Start(t, framework.Options{ExtraArgs: []string{"--socket-reuse-port", "--socket-reuse-address"}})
	if err := bindSame(m); err != nil {
		t.Fatalf("--socket-reuse-port: a second SO_REUSEPORT listener on the client port: %v", err)
	}
	// The member still serves.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mustPut(t, m.Client(), ctx, "k", "v")
}
