package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/soheilhy/cmux"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/downgrade"
	"github.com/metastore/metastore/internal/gateway"
	"github.com/metastore/metastore/internal/httpapi"
	"github.com/metastore/metastore/internal/listen"
	"github.com/metastore/metastore/internal/member/learner"
	"github.com/metastore/metastore/internal/member/maintenance"
	"github.com/metastore/metastore/internal/member/status"
	"github.com/metastore/metastore/internal/memsize"
	"github.com/metastore/metastore/internal/metrics"
	"github.com/metastore/metastore/internal/migrate"
	"github.com/metastore/metastore/internal/rpc"
	"github.com/metastore/metastore/internal/selfclient"
	"github.com/metastore/metastore/internal/tlsflags"
	"github.com/metastore/metastore/internal/tlsutil"
	"github.com/metastore/metastore/internal/version"
)

// grpcOverheadBytes is what etcd adds to --max-request-bytes for the gRPC
// receive limit, so that a request just under the limit is not cut by gRPC
// framing before the server can answer "request is too large".
const grpcOverheadBytes = 512 * 1024

// grpcServer builds the gRPC server: its limits, the middleware chain and
// etcd's services.
func (s *Server) grpcServer(v views) *grpc.Server {
	g := s.cfg.GRPC
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(g.MaxRequestBytes) + grpcOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: g.KeepAliveMinTime, PermitWithoutStream: false}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: g.KeepAliveInterval, Timeout: g.KeepAliveTimeout}),
	}
	if g.MaxConcurrentStreams > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(g.MaxConcurrentStreams))
	} else {
		opts = append(opts, grpc.MaxConcurrentStreams(math.MaxUint32))
	}
	opts = append(opts, grpc.ConnectionTimeout(s.cfg.Limits.ConnectionTimeout))
	// A pool of stream workers instead of a new goroutine per request: a
	// fresh goroutine starts with a small stack and grows it (copying it)
	// as soon as the request decodes or opens a Pebble iterator, which
	// cost ~12% of the CPU of a range load. Workers keep their grown
	// stacks; when all are busy (requests waiting on Raft) gRPC falls back
	// to a goroutine per stream, so the pool bounds nothing. The size was
	// measured on 2 cores with 1000 clients of serializable ranges (share
	// of the server's CPU in runtime.newstack): 64 workers 13.5 %, 128
	// 7.2 %, 256 1.5-3.1 %, 512 3.2 %, 1024 8.8 % (workers used seldom are
	// shrunk by the garbage collector and grow again).
	opts = append(opts, grpc.NumStreamWorkers(uint32(128*runtime.GOMAXPROCS(0))))
	s.authInterceptors()
	s.rel.roleUnary, s.rel.roleStream = learner.Interceptors(v.probe.IsLearner)
	opts = append(opts, s.rel.serverOptions()...)
	opts = append(opts, s.tracingOptions()...)
	// While an online migration from etcd is under way, client writes are
	// refused (internal/migrate); the follower's txns get the same KV service
	// without a bound on the ops of one txn.
	guard := migrate.NewMemberGuard(s.eng, s.backend, s.lg)
	guard.FollowerTxn = rpc.NewKVServer(s.backend, v.header, math.MaxInt32, func(string) {}).Txn
	opts = append(opts, grpc.ChainUnaryInterceptor(guard.Unary))
	if key := s.cfg.Testing.PanicKey; key != "" {
		s.lg.Warn("TESTING: a Put of this key panics (METASTORE_TESTING_PANIC_KEY)", zap.String("key", key))
		opts = append(opts, grpc.ChainUnaryInterceptor(panicOnKey(key)))
	}
	budgetOpt, kvBudget := memsize.Apply(s.cfg.Limits, s.rel.registry, s.lg)
	if err := s.rel.registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "metastore_storage_key_cache_bytes",
		Help: "Bytes held by the cache of keys' newest versions (see metastore_storage_key_cache_limit_bytes).",
	}, func() float64 { b, _ := s.store.KeyCacheStats(); return float64(b) })); err != nil {
		s.lg.Warn("cannot register metric", zap.String("name", "metastore_storage_key_cache_bytes"), zap.Error(err))
	}
	srv := grpc.NewServer(append(opts, budgetOpt)...)
	registerHealth(srv, s.rel.health)
	hdr := v.header
	pb.RegisterKVServer(srv, rpc.NewKVServer(s.tracedKV(s.backend), hdr, s.cfg.GRPC.MaxTxnOps, func(reason string) { s.rel.metrics.ValidationErrors.WithLabelValues(reason).Inc() }, kvBudget))
	pb.RegisterMaintenanceServer(srv, downgrade.WithStatusInfo(rpc.NewMaintenanceServer(v.maintenance, hdr), s.eng))
	pb.RegisterClusterServer(srv, rpc.NewClusterServer(s.reconf, hdr))
	pb.RegisterLeaseServer(srv, rpc.NewLeaseServer(s.backend, hdr))
	pb.RegisterAuthServer(srv, rpc.NewAuthServer(s.backend, hdr))
	pb.RegisterWatchServer(srv, rpc.NewWatchServer(s.hub, func() *pb.ResponseHeader { return rpc.NewHeader(hdr) }, rpc.WatchServerOptions{
		MaxRequestBytes:        uint(s.cfg.GRPC.MaxRequestBytes),
		ProgressNotifyInterval: s.cfg.Ops.WatchProgressNotifyInterval,
		CheckPermission:        rpc.WatchPermission(s.auth),
		Logger:                 s.lg.Named("watch"),
	}))
	v3lockpb.RegisterLockServer(srv, rpc.NewLockServer(s.self))
	v3electionpb.RegisterElectionServer(srv, rpc.NewElectionServer(s.self))
	return srv
}

// views are the narrow collaborators the services and HTTP endpoints
// receive: what this member reports about itself (internal/member/status)
// and the Maintenance backend (internal/member/maintenance).
type views struct {
	header      status.Header
	probe       status.Probe
	maintenance *maintenance.Backend
}

func (s *Server) views() views {
	var v views
	var rep status.Reporter
	v.header, v.probe, rep = status.New(status.Config{
		Self: s.memberID, Raft: s.node, Members: s.members, Store: s.store, Alarms: s.alarms, Engine: s.eng,
		RaftLog: s.raftLog, Applier: s.applier, Reader: s.backend, QuotaBytes: s.cfg.Quota.EffectiveBackendBytes(),
	})
	scratch := os.TempDir()
	if s.cfg.Storage.Engine != config.EngineMemory {
		scratch = filepath.Join(s.cfg.Member.DataDir, "member")
	}
	mc := maintenance.Config{
		Status: rep, Store: s.store, Proposer: s.backend, Leadership: s.leadership, Engine: s.eng, ScratchDir: scratch,
		Downgrade: &downgrade.Service{ClusterVersion: version.ClusterVersion, State: s.eng,
			Raft: downgrade.ViaProposer(proposer{s.backend}), Logger: s.lg},
		Logger: s.lg.Named("maintenance"), Compactor: s.eng,
	}
	if s.cfg.Features.Enabled(config.FeatureStopGRPCServiceOnDefrag) && s.rel.health != nil {
		mc.StopServing = s.rel.health
	}
	v.maintenance = maintenance.New(mc)
	return v
}

// startListeners serves the client, metrics and client-HTTP URLs.
func (s *Server) startListeners() error {
	// The lock and election services run etcd's concurrency recipes over a
	// client of this member, as etcd's do; it dials lazily, once serving.
	selfTLS := tlsflags.SelfClient(s.clientTLS, s.cfg.Member.ListenClientURLs)
	self, err := selfclient.New(listen.SelfEndpoint(s.cfg.Member.ListenClientURLs), selfTLS, s.lg.Named("self-client"))
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.self = self
	v := s.views()
	s.probe = v.probe
	s.grpcSrv = s.grpcServer(v)
	var gwHandler http.Handler
	if s.cfg.GRPC.EnableGateway {
		g, err := gateway.New(context.Background(), listen.SelfEndpoint(s.cfg.Member.ListenClientURLs), selfTLS)
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		s.gateway = g
		gwHandler = g
	}
	httpHandler := httpapi.New(httpapi.Config{
		Gateway:  gwHandler,
		Probe:    v.probe,
		Versions: httpapi.Versions{Server: version.EtcdAPIVersion, Cluster: version.ClusterVersion, Storage: version.StorageVersion},
		Timeout:  s.requestTimeout(),
		Metrics:  metrics.Handler(s.rel.registry),
		Pprof:    s.cfg.Ops.EnablePprof,
	})
	// --cors and --host-whitelist guard the HTTP endpoints of the client
	// URLs; the metrics URLs stay unchecked, as in etcd.
	access, err := httpapi.NewAccessControl(s.cfg.GRPC.CORS, s.cfg.GRPC.HostWhitelist, s.lg)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	clientHTTP := access.Wrap(httpHandler)
	for _, u := range s.cfg.Member.ListenClientURLs {
		l, err := s.listen(u, "--listen-client-urls", s.clientTLS, true)
		if err != nil {
			return err
		}
		if listen.IsTLS(u.Scheme) {
			// net/http serves HTTP/2 on a TLS listener that negotiates h2.
			hs := &http.Server{Handler: listen.GRPCOrHTTP(s.grpcSrv, clientHTTP), ReadHeaderTimeout: 10 * time.Second,
				HTTP2: &http.HTTP2Config{MaxConcurrentStreams: int(s.maxStreams())}}
			s.httpSrvs = append(s.httpSrvs, hs)
			s.clientServes = append(s.clientServes, func() { _ = hs.Serve(l) })
			continue
		}
		m := cmux.New(l)
		grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
		httpL := m.Match(cmux.Any())
		hs := &http.Server{Handler: clientHTTP, ReadHeaderTimeout: 10 * time.Second}
		s.httpSrvs = append(s.httpSrvs, hs)
		s.muxes = append(s.muxes, m)
		s.clientServes = append(s.clientServes,
			func() { _ = s.grpcSrv.Serve(grpcL) },
			func() { _ = hs.Serve(httpL) },
			func() {
				if err := m.Serve(); err != nil && !listen.IsClosed(err) {
					s.lg.Warn("client listener stopped", zap.String("url", u.String()), zap.Error(err))
				}
			})
	}
	for _, u := range s.cfg.Ops.ListenMetricsURLs {
		l, err := s.listen(u, "--listen-metrics-urls", s.clientTLS, false)
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: httpHandler, ReadHeaderTimeout: 10 * time.Second}
		s.httpSrvs = append(s.httpSrvs, hs)
		go func() { _ = hs.Serve(l) }()
	}
	for _, u := range s.cfg.Member.ListenClientHTTPURLs {
		l, err := s.listen(u, "--listen-client-http-urls", s.clientTLS, true)
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: clientHTTP, ReadHeaderTimeout: 10 * time.Second}
		s.httpSrvs = append(s.httpSrvs, hs)
		s.clientServes = append(s.clientServes, func() { _ = hs.Serve(l) })
	}
	return nil
}

func (s *Server) maxStreams() uint32 {
	if n := s.cfg.GRPC.MaxConcurrentStreams; n > 0 {
		return n
	}
	return math.MaxUint32
}

func urlStrings(us []url.URL) []string {
	out := make([]string, 0, len(us))
	for _, u := range us {
		out = append(out, u.String())
	}
	return out
}

// panicOnKey is the test-only fault that proves panic recovery end to end:
// it runs innermost, where a bug in a handler would.
func panicOnKey(key string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if p, ok := req.(*pb.PutRequest); ok && string(p.Key) == key {
			panic("metastore testing: injected panic for key " + key)
		}
		return h(ctx, req)
	}
}

// listen opens a listener for u (internal/listen), with TLS when u is https
// or unixs. Client listeners (client=true) are counted against
// --max-connections; peer and metrics listeners are not, so a flood of
// clients can never cut the cluster's own traffic or the monitoring that
// would show the flood.
func (s *Server) listen(u url.URL, flag string, p *tlsutil.Pair, client bool) (net.Listener, error) {
	l, err := listen.Listen(u, flag, p != nil, listen.SocketOptions{
		ReusePort: s.cfg.Member.SocketReusePort, ReuseAddress: s.cfg.Member.SocketReuseAddress})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.listeners = append(s.listeners, l)
	if client {
		l = s.rel.conns.Wrap(l, s.lg)
	}
	if listen.IsTLS(u.Scheme) {
		l = tls.NewListener(l, p.Server)
	}
	return l, nil
}
