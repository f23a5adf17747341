package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/soheilhy/cmux"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/internal/alarm"
	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/backend"
	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/gateway"
	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/member/bootstrap"
	"github.com/metastore/metastore/internal/member/leadership"
	"github.com/metastore/metastore/internal/member/maintenance"
	"github.com/metastore/metastore/internal/member/peers"
	"github.com/metastore/metastore/internal/member/reconfig"
	"github.com/metastore/metastore/internal/member/snapinstall"
	"github.com/metastore/metastore/internal/member/status"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/raftnode"
	"github.com/metastore/metastore/internal/raftsnap"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/tlsflags"
	"github.com/metastore/metastore/internal/tlsutil"
	"github.com/metastore/metastore/internal/tracing"
	"github.com/metastore/metastore/internal/transport"
	"github.com/metastore/metastore/internal/txn"
	"github.com/metastore/metastore/internal/watch"
)

// Server is one metastore member. Its fields are the components Start
// builds, each written once by Start before any goroutine that reads it
// is started, and released by Stop's phases, which run one after another;
// only err is shared with other goroutines, under errMu.
type Server struct {
	cfg *config.Config
	lg  *zap.Logger

	eng     storage.Engine
	raftLog *raftlog.Storage
	store   *mvcc.Store
	members *membership.Store
	exec    *txn.Executor
	lessor  *lease.Lessor
	alarms  *alarm.Store
	auth    *auth.Store
	hub     *watch.Hub
	self    *clientv3.Client // for the lock and election services
	gateway *gateway.Gateway

	transport *transport.Transport
	snapRecv  *raftsnap.Receiver
	clientTLS *tlsutil.Pair // nil: no client TLS configured
	peerTLS   *tlsutil.Pair
	peerLns   []net.Listener // bound by bindPeerListeners, served by startPeerListeners
	peerSrvs  []*http.Server
	// peerLocal is the address every connection to a peer is dialed from
	// (SetMemberLocalAddr; "" lets the kernel choose), chosen once in Start
	// before the first peer call.
	peerLocal  string
	applier    *apply.Applier
	wait       *apply.Wait
	node       *raftnode.Node
	backend    *backend.Backend
	memberID   uint64
	ticker     *time.Ticker
	peers      *peers.Syncer
	snaps      *snapinstall.Installer
	reconf     *reconfig.Reconfigurer
	leadership *leadership.Mover
	probe      status.Probe // the health checks' view, set by startListeners

	grpcSrv   *grpc.Server
	httpSrvs  []*http.Server
	listeners []net.Listener
	muxes     []cmux.CMux
	// clientServes serve the client listeners (gRPC and HTTP). startListeners
	// binds the ports and fills it; start runs it only once the member
	// serves (bootstrap.AwaitServing), as etcd's embed serves nothing before
	// ReadyNotify: a member still catching up must not answer with an old
	// revision. Meanwhile connections wait in the accept queue. Written by
	// start only, before any of them runs.
	clientServes []func()

	rel    *reliability
	tracer *tracing.Provider // nil: --enable-distributed-tracing is off

	applyDone chan struct{}
	donec     chan struct{}
	errMu     sync.Mutex
	err       error // guarded by errMu
	failOnce  sync.Once
	stopOnce  sync.Once
	stopErr   error
}

// Config is a member's configuration: every etcd flag and metastore's
// own, parsed and checked. Build it with ParseFlags (or config.Default and
// config.Parse inside this module).
type Config = config.Config

// ParseFlags builds a Config from etcd-style command-line flags and
// ETCD_* environment entries ("ETCD_NAME=m1"), as the metastore binary
// does.
func ParseFlags(args, environ []string) (*Config, error) { return config.Parse(args, environ) }

// New checks cfg and returns a Server that Start will run. It opens
// nothing: a configuration error is reported here, before any file or port
// is touched.
func New(cfg *Config, lg *zap.Logger) (*Server, error) {
	if err := validate(cfg); err != nil {
		return nil, err
	}
	if lg == nil {
		lg = zap.NewNop()
	}
	return &Server{cfg: cfg, lg: lg, donec: make(chan struct{}), applyDone: make(chan struct{})}, nil
}

// validate rejects what no member can start with. config.Parse already
// checks flag by flag; this guards an embedding program's hand-made Config.
func validate(cfg *Config) error {
	switch {
	case cfg == nil:
		return errors.New("server: no config")
	case len(cfg.Member.ListenClientURLs) == 0:
		return errors.New("server: no client URL to listen on (--listen-client-urls)")
	case len(cfg.Member.ListenPeerURLs) == 0:
		return errors.New("server: no peer URL to listen on (--listen-peer-urls)")
	case cfg.Raft.HeartbeatInterval <= 0 || cfg.Raft.ElectionTicks() < 1:
		return fmt.Errorf("server: --election-timeout (%v) must be at least --heartbeat-interval (%v), which must be positive",
			cfg.Raft.ElectionTimeout, cfg.Raft.HeartbeatInterval)
	case cfg.Storage.Engine != config.EngineMemory && cfg.Member.DataDir == "":
		return errors.New("server: no --data-dir for the on-disk storage engine")
	}
	return nil
}

// Done is closed when the server stopped by itself after a fatal error.
func (s *Server) Done() <-chan struct{} { return s.donec }

// Err returns the fatal error that stopped the server, if any.
func (s *Server) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func (s *Server) fail(err error) {
	s.failOnce.Do(func() {
		s.errMu.Lock()
		s.err = err
		s.errMu.Unlock()
		s.lg.Error("fatal server error", zap.Error(err))
		close(s.donec)
	})
}

// Start opens storage, starts Raft, the apply loop and the listeners, and
// returns once the member serves client requests.
func (s *Server) Start() error { return s.StartContext(context.Background()) }

// StartContext is Start that gives up, releasing what it opened, when ctx
// ends: the member waits for its cluster to serve without a deadline, so a
// signal during that wait must be able to end it.
func (s *Server) StartContext(ctx context.Context) error {
	if err := s.start(ctx); err != nil {
		// Release what was opened (the data dir lock above all), so an
		// embedding program can retry or exit cleanly.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
		return err
	}
	return nil
}

func (s *Server) start(ctx context.Context) error {
	if err := s.setupReliability(); err != nil {
		return err
	}
	var err error
	if s.clientTLS, s.peerTLS, err = tlsflags.Build(s.cfg, s.lg); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := s.setupTracing(); err != nil {
		return err
	}
	// Peer ports are bound before raft dials any peer, as etcd binds its
	// listeners before it starts the server: a peer (or a proxy in front
	// of one) that dials this member while it starts waits in the accept
	// queue instead of being refused, and a port taken by another process
	// fails the start before any state is opened.
	if err := s.bindPeerListeners(); err != nil {
		return err
	}
	if err := s.openStorage(); err != nil {
		return err
	}
	// --bootstrap-defrag-threshold-megabytes, before anything else reads
	// the store, as etcd does when it opens its backend.
	if err := maintenance.BootstrapDefrag(ctx, s.eng, s.cfg.Storage.BootstrapDefragThresholdMegabytes, s.lg.Named("bootstrap")); err != nil {
		return fmt.Errorf("server: bootstrap defragmentation: %w", err)
	}
	s.peerLocal = s.peerLocalAddr()
	if err := s.initialCorruptionCheck(ctx); err != nil { // server/corruption.go
		return err
	}
	if err := s.startRaft(ctx); err != nil {
		return err
	}
	if err := s.startListeners(); err != nil {
		return err
	}
	if err := s.awaitServing(ctx); err != nil {
		return fmt.Errorf("server: waiting for the member to serve: %w", err)
	}
	for _, serve := range s.clientServes {
		go serve()
	}
	if _, err := bootstrap.CompactRestoredLog(s.eng, s.raftLog, s.applier.AppliedIndex(), s.lg); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.startBackground()
	s.registerShutdown()
	s.lg.Info("ready to serve client requests",
		zap.String("member-id", fmt.Sprintf("%x", s.memberID)),
		zap.String("cluster-id", fmt.Sprintf("%x", s.members.ClusterID())),
		zap.Strings("client-urls", urlStrings(s.cfg.Member.ListenClientURLs)))
	return nil
}

func (s *Server) requestTimeout() time.Duration {
	// etcd's ReqTimeout: 5 s plus two election timeouts.
	return 5*time.Second + 2*s.cfg.Raft.ElectionTimeout
}

// Stop shuts the member down in four phases (internal/lifecycle): stop accepting
// (health NOT_SERVING, listeners closed), drain (in-flight requests finish),
// persist (raft and apply stop, storage synced), close.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		if s.rel == nil || s.rel.shutdown == nil {
			s.registerShutdown()
		}
		s.stopErr = s.rel.shutdown.Run(ctx)
	})
	return s.stopErr
}
