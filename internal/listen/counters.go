package listen

import (
	"net"
	"sync"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/middleware"
)

// Counters caps the connections of each client listener at
// --max-connections and reports them for the metrics: the figure is that
// of the fullest listener, so current >= limit means some listener refuses
// connections.
type Counters struct {
	max       int64
	mu        sync.Mutex
	listeners []*middleware.LimitedListener // guarded by mu
}

// NewCounters returns Counters that allow limit connections per
// listener (<= 0: unlimited).
func NewCounters(limit int64) *Counters { return &Counters{max: max(limit, 0)} }

// Wrap caps l; each connection refused is logged.
func (c *Counters) Wrap(l net.Listener, lg *zap.Logger) net.Listener {
	ll := middleware.LimitListener(l, int(c.max), func(conn net.Conn) {
		lg.Warn("connection refused: --max-connections reached", zap.String("remote", conn.RemoteAddr().String()), zap.Int64("max", c.max))
	})
	c.mu.Lock()
	c.listeners = append(c.listeners, ll)
	c.mu.Unlock()
	return ll
}

// Count is the number of connections of the fullest listener.
func (c *Counters) Count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, l := range c.listeners {
		n = max(n, l.Count())
	}
	return n
}

// Max is the limit (0: unlimited).
func (c *Counters) Max() int64 { return c.max }
