package server

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/lifecycle"
	"github.com/metastore/metastore/internal/listen"
	"github.com/metastore/metastore/internal/metrics"
	"github.com/metastore/metastore/internal/middleware"
	"github.com/metastore/metastore/internal/raftnode"
	"github.com/metastore/metastore/internal/version"
)

// reliability holds the reliability layer for one server (docs/architecture.md): metrics,
// supervised goroutines, health, the interceptor chain and shutdown.
type reliability struct {
	registry   *prometheus.Registry
	metrics    *metrics.Metrics
	supervisor *lifecycle.Supervisor
	health     *lifecycle.Health
	limiter    *middleware.Limiter
	recoverer  *middleware.Recoverer
	rate       *middleware.RateLimiter
	grpcMet    *middleware.GRPCMetrics
	shutdown   *lifecycle.Shutdown
	conns      *listen.Counters
	slowLog    *middleware.SlowLog
	// authUnary and authStream fill the chain's auth slot (server/auth.go).
	authUnary  grpc.UnaryServerInterceptor
	authStream grpc.StreamServerInterceptor
	// roleUnary and roleStream fill the chain's role slot (internal/member/learner).
	roleUnary  grpc.UnaryServerInterceptor
	roleStream grpc.StreamServerInterceptor
	// leader implements clientv3.WithRequireLeader; its monitor runs supervised.
	leader *middleware.RequireLeader
}

func (s *Server) setupReliability() error {
	r := &reliability{registry: prometheus.NewRegistry(), conns: listen.NewCounters(int64(s.cfg.Limits.MaxConnections))}
	s.rel = r
	r.metrics = metrics.New(r.registry)
	r.metrics.SetVersion(version.EtcdAPIVersion)
	r.metrics.QuotaBackendBytes.Set(float64(s.cfg.Quota.EffectiveBackendBytes()))
	var err error
	r.supervisor, err = lifecycle.NewSupervisor(context.Background(), lifecycle.SupervisorConfig{
		Logger:     s.lg.Named("supervisor"),
		Registerer: r.registry,
		OnFatal:    func(fe *lifecycle.FatalError) { s.fail(fe) },
	})
	if err != nil {
		return fmt.Errorf("server: supervisor: %w", err)
	}
	// The closure runs only once the client listeners serve, after startRaft set s.node.
	r.leader = middleware.NewRequireLeader(func() bool { return s.node.Leader() != 0 }, s.cfg.Raft.ElectionTimeout)
	r.health = lifecycle.NewHealth(lifecycle.HealthConfig{Logger: s.lg.Named("health")})
	if r.recoverer, err = middleware.NewRecoverer(middleware.RecoverConfig{Logger: s.lg.Named("grpc"), Registerer: r.registry}); err != nil {
		return fmt.Errorf("server: recover interceptor: %w", err)
	}
	l := s.cfg.Limits
	if r.limiter, err = middleware.NewLimiter(middleware.LimitsConfig{
		MaxRequests:    int64(l.MaxRequestsInFlight),
		RequestTimeout: l.RequestTimeout,
		// Proposals are bounded by the request path's timeout anyway,
		// without a timer per request (internal/middleware/limits.go).
		ProposalTimeout: s.requestTimeout(),
		IsProposal:      middleware.EtcdProposals,
		IsLocalWork:     middleware.EtcdLocalWork,
		MaxMemoryBytes:  l.MemoryLimitBytes,
		IsWrite:         middleware.EtcdWrites,
		Conns:           r.conns,
		Logger:          s.lg.Named("limits"),
		Registerer:      r.registry,
	}); err != nil {
		return fmt.Errorf("server: limits: %w", err)
	}
	if r.rate, err = middleware.NewRateLimiter(middleware.RateLimitConfig{Rate: l.RateLimitPerClient, Burst: l.Burst(), Registerer: r.registry}); err != nil {
		return fmt.Errorf("server: rate limit: %w", err)
	}
	r.slowLog = middleware.NewSlowLog(middleware.SlowLogConfig{Logger: s.lg, UnaryWarn: s.cfg.Ops.WarningUnaryRequestDuration,
		ApplyWarn: s.cfg.Ops.WarningApplyDuration, SlowRead: r.metrics.SlowApplies.Inc})
	if r.grpcMet, err = middleware.NewGRPCMetrics(middleware.MetricsConfig{Registerer: r.registry, NoHandlingTimeHistogram: s.cfg.Ops.Metrics != "extensive"}); err != nil {
		return fmt.Errorf("server: grpc metrics: %w", err)
	}
	// The gauges read the components when scraped. They are installed
	// before any listener opens (the components they read are all in place
	// by then), so no scrape can see a gauge without its source: the memory
	// gauge shows the sample NewLimiter took from the first scrape on.
	r.metrics.SetSources(metrics.Sources{
		DBTotalSize:      func() float64 { return float64(s.eng.Usage().SizeBytes) },
		DBTotalSizeInUse: func() float64 { return float64(s.eng.Usage().LiveBytes) },
		CurrentRevision:  func() float64 { return float64(s.store.Rev()) },
		CompactRevision:  func() float64 { return float64(s.store.CompactRev()) },
		KeysTotal:        func() float64 { return float64(s.store.KeyCount()) },
		WatchStreams:     func() float64 { return float64(s.hub.Stats().Streams) },
		Watchers:         func() float64 { return float64(s.hub.WatcherCount()) },
		SlowWatchers:     func() float64 { return float64(s.hub.Stats().Unsynced) },
		MemoryUsage:      func() float64 { return float64(r.limiter.Stats().MemoryUsageBytes) },
		MemoryLimit:      func() float64 { return float64(s.cfg.Limits.MemoryLimitBytes) },
	})
	if err := r.registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "metastore_connections_current", Help: "Client connections currently open.",
	}, func() float64 { return float64(r.conns.Count()) })); err != nil {
		return err
	}
	if err := r.registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "metastore_connections_limit", Help: "Maximum client connections (--max-connections; 0 = unlimited).",
	}, func() float64 { return float64(r.conns.Max()) })); err != nil {
		return err
	}
	return nil
}

// interceptors returns the grpc.Server options of the middleware chain.
func (r *reliability) serverOptions() []grpc.ServerOption {
	us, ss := middleware.Chain(middleware.ChainOptions{
		Recover:       r.recoverer,
		SlowLog:       r.slowLog,
		RoleUnary:     r.roleUnary,
		RoleStream:    r.roleStream,
		RequireLeader: r.leader,
		RateLimit:     r.rate,
		Limits:        r.limiter,
		AuthUnary:     r.authUnary,
		AuthStream:    r.authStream,
		Metrics:       r.grpcMet,
		MetricsOuter:  true,
	})
	// One composed interceptor: gRPC's chain allocates a closure per level
	// per call (middleware.Compose).
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(middleware.Compose(us...)), grpc.ChainStreamInterceptor(ss...)}
}

func registerHealth(srv *grpc.Server, h *lifecycle.Health) {
	healthpb.RegisterHealthServer(srv, h.Server())
}

// ResourceStats reports the limits' current usage: requests and streams in
// flight, connections and memory.
func (s *Server) ResourceStats() middleware.ResourceStats { return s.rel.limiter.Stats() }

// PanicCount returns how many panics were recovered (requests and
// supervised goroutines).
func (s *Server) PanicCount() int64 {
	return s.rel.recoverer.PanicCount() + s.rel.supervisor.PanicCount()
}

// Registry returns the server's Prometheus registry.
func (s *Server) Registry() *prometheus.Registry { return s.rel.registry }

func (s *Server) raftMetrics() raftnode.Metrics {
	m := s.rel.metrics
	return raftnode.Metrics{
		FsyncSeconds:  m.WALFsyncDuration.Observe,
		LeaderChanged: m.LeaderChanges.Inc,
		LeaderIsSelf:  func(b bool) { m.IsLeader.Set(boolGauge(b)) },
		HasLeader:     func(b bool) { m.HasLeader.Set(boolGauge(b)) },
		// etcd's proposals_committed_total is the commit index raft knows,
		// set by the Ready loop before the entries it commits are handed
		// to apply (never the persisted HardState, which is saved after
		// that hand-off and so can lag the applied index).
		Committed: func(index uint64) { m.ProposalsCommitted.Set(float64(index)) },
	}
}

func (s *Server) applyHooks() apply.Hooks {
	m := s.rel.metrics
	return apply.Hooks{
		Applied: func(int) {
			m.ProposalsApplied.Set(float64(s.applier.AppliedIndex()))
		},
		CommitSeconds: m.BackendCommitDuration.Observe,
		Put:           m.PutTotal.Inc,
		Delete:        m.DeleteTotal.Inc,
		Txn:           m.TxnTotal.Inc,
		SlowApply:     m.SlowApplies.Inc,
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
