package listen

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// SocketOptions are --socket-reuse-port and --socket-reuse-address.
type SocketOptions struct {
	ReusePort, ReuseAddress bool
}

// Listen opens a listener for u; flag names the flag u came from, for the
// errors. An https or unixs URL needs a certificate (haveTLS); the caller
// wraps the listener in TLS (IsTLS) after anything that must see the raw
// connections.
func Listen(u url.URL, flag string, haveTLS bool, o SocketOptions) (net.Listener, error) {
	network, addr := "tcp", u.Host
	switch u.Scheme {
	case "http", "unix":
	case "https", "unixs":
		if !haveTLS {
			return nil, fmt.Errorf("%s %s: %s needs a certificate (--cert-file/--key-file or --auto-tls, with the --peer- prefix for peers)", flag, u.String(), u.Scheme)
		}
	default:
		return nil, fmt.Errorf("%s %s: scheme must be http, https, unix or unixs", flag, u.String())
	}
	if IsUnix(u.Scheme) {
		network, addr = "unix", SocketPath(u)
		if err := removeStaleSocket(addr); err != nil {
			return nil, fmt.Errorf("listen on %s %s: %w", flag, u.String(), err)
		}
	}
	lc := net.ListenConfig{Control: socketOptions(o)}
	l, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s: %w", flag, u.String(), err)
	}
	return l, nil
}

// IsTLS reports whether a URL of this scheme is served over TLS.
func IsTLS(scheme string) bool { return scheme == "https" || scheme == "unixs" }

// IsUnix reports whether a URL of this scheme names a unix socket.
func IsUnix(scheme string) bool { return scheme == "unix" || scheme == "unixs" }

// SocketPath is the socket file of a unix:// or unixs:// URL. As in etcd,
// "unix://localhost:2379" names the file "localhost:2379" in the working
// directory, and "unix:///run/etcd.sock" an absolute path.
func SocketPath(u url.URL) string {
	if u.Host == "" && u.Opaque != "" {
		return u.Opaque
	}
	return u.Host + u.Path
}

// removeStaleSocket deletes a socket file left by a process that died
// without closing its listener, which would otherwise make every restart
// fail with "address already in use". Anything that is not a socket is
// left alone: the listen then fails with a clear error.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	return os.Remove(path)
}

// socketOptions sets etcd's --socket-reuse-port (SO_REUSEPORT: another
// process may bind the same port, e.g. a replacement started before the old
// one exits) and --socket-reuse-address (SO_REUSEADDR, which Go already
// sets on TCP listeners; setting it again keeps the flag's promise
// explicit) on TCP listeners.
func socketOptions(o SocketOptions) func(network, address string, c syscall.RawConn) error {
	if !o.ReusePort && !o.ReuseAddress {
		return nil
	}
	return func(network, _ string, c syscall.RawConn) error {
		if network != "tcp" && network != "tcp4" && network != "tcp6" {
			return nil
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			if o.ReuseAddress {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			}
			if serr == nil && o.ReusePort {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// SelfURL is the client URL this member's own client dials: the first TCP
// one, since a relative unix socket path depends on the working directory,
// or the first URL when all are unix sockets.
func SelfURL(us []url.URL) url.URL {
	for _, u := range us {
		if !IsUnix(u.Scheme) {
			return u
		}
	}
	return us[0]
}

// SelfEndpoint is the address this member's own client dials: SelfURL,
// with a wildcard host replaced by loopback.
func SelfEndpoint(us []url.URL) string {
	if len(us) == 0 {
		return "127.0.0.1:2379"
	}
	u := SelfURL(us)
	if IsUnix(u.Scheme) {
		return "unix://" + SocketPath(u)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return u.Host
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// GRPCOrHTTP routes HTTP/2 gRPC calls to g and everything else to h: over
// TLS, ALPN tells HTTP/2 from HTTP/1.1, so one HTTP server serves both, as
// etcd's secure listeners do.
func GRPCOrHTTP(g, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			g.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// IsClosed reports whether err says the listener was closed (the normal
// end of serving).
func IsClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "use of closed network connection")
}
