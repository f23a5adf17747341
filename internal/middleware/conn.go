package middleware

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	mmetrics "github.com/metastore/metastore/internal/metrics"
)

// LimitedListener accepts at most Max connections at a time. Unlike
// golang.org/x/net/netutil.LimitListener, which stops calling Accept and
// lets clients hang in the kernel backlog, a connection over the limit is
// accepted and closed at once, so the client fails fast and can try another
// member.
//
// Handshake and idle timeouts are left to gRPC: grpc.ConnectionTimeout bounds
// the TLS and HTTP/2 handshake (--connection-timeout), and
// keepalive.ServerParameters.MaxConnectionIdle closes connections with no
// RPCs for that long; both are server options the server sets.
type LimitedListener struct {
	net.Listener
	max      int64
	onReject func(net.Conn)
	cur      atomic.Int64
}

// LimitListener wraps l. maxConns <= 0 means unlimited (connections are still
// counted). onReject, if not nil, is called with each refused connection
// before it is closed (for logging; it must not block).
func LimitListener(l net.Listener, maxConns int, onReject func(net.Conn)) *LimitedListener {
	return &LimitedListener{Listener: l, max: int64(maxConns), onReject: onReject}
}

// Accept returns the next connection under the limit, closing the ones over
// it. Errors of the underlying listener are returned as they are.
func (l *LimitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.tryAcquire() {
			return &limitedConn{Conn: c, release: func() { l.cur.Add(-1) }}, nil
		}
		if l.onReject != nil {
			l.onReject(c)
		}
		_ = c.Close()
	}
}

func (l *LimitedListener) tryAcquire() bool {
	if l.max <= 0 {
		l.cur.Add(1)
		return true
	}
	for {
		n := l.cur.Load()
		if n >= l.max {
			return false
		}
		if l.cur.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Count is the number of connections open now.
func (l *LimitedListener) Count() int64 { return l.cur.Load() }

// Max is the limit (0: unlimited).
func (l *LimitedListener) Max() int64 { return max(l.max, 0) }

// RegisterMetrics registers metastore_connections_current and
// metastore_connections_limit on reg. Serving several listeners, register
// only one of them (or sum them in the server).
func (l *LimitedListener) RegisterMetrics(reg prometheus.Registerer) error {
	return mmetrics.RegisterAll(reg,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "metastore_connections_current",
			Help: "The number of client connections open now.",
		}, func() float64 { return float64(l.Count()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "metastore_connections_limit",
			Help: "The maximum number of client connections (0: unlimited).",
		}, func() float64 { return float64(l.Max()) }),
	)
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
