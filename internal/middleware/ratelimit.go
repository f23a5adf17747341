package middleware

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	mmetrics "github.com/metastore/metastore/internal/metrics"
)

// Defaults of RateLimitConfig.
const (
	DefaultRateLimitMaxClients = 10000
	DefaultRateLimitIdleTTL    = time.Minute
)

// RateLimitConfig configures a RateLimiter.
type RateLimitConfig struct {
	// Rate is the sustained requests per second allowed per client IP;
	// 0 switches rate limiting off.
	Rate float64
	// Burst is the bucket size (default: Rate rounded up, at least 1).
	Burst int
	// MaxClients bounds the number of buckets kept; beyond it the least
	// recently seen client's bucket is dropped (it restarts full).
	MaxClients int
	// IdleTTL drops the bucket of a client not seen for this long (default
	// 1 min, and never less than the time to refill a bucket).
	IdleTTL time.Duration
	// Now is the clock (default time.Now).
	Now        func() time.Time
	Registerer prometheus.Registerer // metastore_rate_limited_total
}

// RateLimiter is a token bucket per client IP. Memory is bounded by
// MaxClients; buckets live in a list ordered by last use, so dropping idle
// or excess clients costs O(1) each.
type RateLimiter struct {
	cfg     RateLimitConfig
	limited prometheus.Counter

	mu      sync.Mutex // guards clients and lru
	clients map[string]*list.Element
	lru     list.List // front: most recently seen; values *bucket
}

type bucket struct {
	key      string
	lim      *rate.Limiter
	lastSeen time.Time
}

// NewRateLimiter builds a RateLimiter (a no-op when cfg.Rate is 0).
func NewRateLimiter(cfg RateLimitConfig) (*RateLimiter, error) {
	if cfg.Rate < 0 || cfg.Burst < 0 || cfg.MaxClients < 0 {
		return nil, errors.New("rate limit: negative setting")
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(1, int(cfg.Rate+0.999999))
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = DefaultRateLimitMaxClients
	}
	if cfg.IdleTTL <= 0 {
		cfg.IdleTTL = DefaultRateLimitIdleTTL
	}
	if cfg.Rate > 0 {
		// Dropping a bucket refills it; never before it would be full anyway.
		refill := time.Duration(float64(cfg.Burst) / cfg.Rate * float64(time.Second))
		cfg.IdleTTL = max(cfg.IdleTTL, refill)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	limited := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metastore_rate_limited_total",
		Help: "The total number of requests rejected by the per-client rate limit.",
	})
	if err := mmetrics.RegisterAll(cfg.Registerer, limited); err != nil {
		return nil, fmt.Errorf("rate limit: %w", err)
	}
	return &RateLimiter{cfg: cfg, limited: limited, clients: map[string]*list.Element{}}, nil
}

// Enabled reports whether a rate is set.
func (r *RateLimiter) Enabled() bool { return r.cfg.Rate > 0 }

// Clients is the number of buckets held.
func (r *RateLimiter) Clients() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.clients)
}

// Allow takes a token from key's bucket.
func (r *RateLimiter) Allow(key string) bool {
	if !r.Enabled() {
		return true
	}
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evictIdle(now)
	var b *bucket
	if e, ok := r.clients[key]; ok {
		b = e.Value.(*bucket)
		r.lru.MoveToFront(e)
	} else {
		for len(r.clients) >= r.cfg.MaxClients {
			r.remove(r.lru.Back())
		}
		b = &bucket{key: key, lim: rate.NewLimiter(rate.Limit(r.cfg.Rate), r.cfg.Burst)}
		r.clients[key] = r.lru.PushFront(b)
	}
	b.lastSeen = now
	if b.lim.AllowN(now, 1) {
		return true
	}
	r.limited.Inc()
	return false
}

func (r *RateLimiter) evictIdle(now time.Time) {
	for e := r.lru.Back(); e != nil; e = r.lru.Back() {
		if now.Sub(e.Value.(*bucket).lastSeen) < r.cfg.IdleTTL {
			return
		}
		r.remove(e)
	}
}

func (r *RateLimiter) remove(e *list.Element) {
	delete(r.clients, e.Value.(*bucket).key)
	r.lru.Remove(e)
}

// ClientKey is the rate-limit key of a request: the peer's IP without the
// port (all connections of one host share a bucket), or the whole address
// for non-IP transports.
func ClientKey(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	switch a := p.Addr.(type) {
	case *net.TCPAddr:
		return a.IP.String()
	case *net.UDPAddr:
		return a.IP.String()
	}
	s := p.Addr.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}

// UnaryServerInterceptor rejects a client's request with ErrTooManyRequests
// when its bucket is empty.
func (r *RateLimiter) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if r.Enabled() && !r.Allow(ClientKey(ctx)) {
			return nil, ErrTooManyRequests
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor takes one token when a stream opens; messages on
// an open stream (watch requests, keep-alives) are not rate limited.
func (r *RateLimiter) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if r.Enabled() && !r.Allow(ClientKey(ss.Context())) {
			return ErrTooManyRequests
		}
		return handler(srv, ss)
	}
}
