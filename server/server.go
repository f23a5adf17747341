package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/soheilhy/cmux"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/metastore/metastore/internal/alarm"
	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/backend"
	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/gateway"
	"github.com/metastore/metastore/internal/httpapi"
	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/lifecycle"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/metrics"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/raftnode"
	"github.com/metastore/metastore/internal/raftsnap"
	"github.com/metastore/metastore/internal/rpc"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
	"github.com/metastore/metastore/internal/tlsutil"
	"github.com/metastore/metastore/internal/transport"
	"github.com/metastore/metastore/internal/txn"
	"github.com/metastore/metastore/internal/version"
	"github.com/metastore/metastore/internal/watch"
)

// grpcOverheadBytes is what etcd adds to --max-request-bytes for the gRPC
// receive limit, so that a request just under the limit is not cut by gRPC
// framing before the server can answer "request is too large".
const grpcOverheadBytes = 512 * 1024

// Server is one metastore member.
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
	peerSrvs  []*http.Server
	applier   *apply.Applier
	wait      *apply.Wait
	node      *raftnode.Node
	backend   *backend.Backend
	memberID  uint64
	ticker    *time.Ticker

	grpcSrv   *grpc.Server
	httpSrvs  []*http.Server
	listeners []net.Listener
	muxes     []cmux.CMux

	rel *reliability

	applyDone chan struct{}
	donec     chan struct{}
	errMu     sync.Mutex
	err       error
	failOnce  sync.Once
	stopOnce  sync.Once
	stopErr   error
}

// New validates cfg and returns a Server that Start will run.
func New(cfg *config.Config, lg *zap.Logger) (*Server, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	return &Server{cfg: cfg, lg: lg, donec: make(chan struct{}), applyDone: make(chan struct{})}, nil
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
func (s *Server) Start() error {
	if err := s.start(); err != nil {
		// Release what was opened (the data dir lock above all), so an
		// embedding program can retry or exit cleanly.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
		return err
	}
	return nil
}

func (s *Server) start() error {
	if err := s.setupReliability(); err != nil {
		return err
	}
	if err := s.setupTLS(); err != nil {
		return err
	}
	if err := s.openStorage(); err != nil {
		return err
	}
	if err := s.startRaft(); err != nil {
		return err
	}
	if err := s.startListeners(); err != nil {
		return err
	}
	if err := s.waitServingWhileProgressing(); err != nil {
		return fmt.Errorf("server: waiting for the member to serve: %w", err)
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

func (s *Server) openStorage() error {
	if s.cfg.Storage.MemoryMlock {
		if err := lockMemory(); err != nil {
			return err
		}
	}
	switch s.cfg.Storage.Engine {
	case config.EngineMemory:
		s.eng = memory.New()
	default:
		dir := filepath.Join(s.cfg.Member.DataDir, "member", "pebble")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("server: create data dir %s: %w", dir, err)
		}
		eng, err := pebbleengine.Open(dir, pebbleengine.Options{NoSync: s.cfg.Storage.UnsafeNoFsync, WALDir: s.cfg.Member.WALDir, Logger: s.lg.Named("pebble")})
		if err != nil {
			return fmt.Errorf("server: open storage: %w", err)
		}
		s.eng = eng
	}
	// An installation of a leader's snapshot that a crash interrupted is
	// completed before anything reads the engine.
	installed, err := raftsnap.Recover(s.eng)
	if err != nil {
		return fmt.Errorf("server: recover snapshot installation: %w", err)
	}
	if installed {
		s.lg.Warn("completed a snapshot installation interrupted by a crash")
	}
	s.snapRecv = raftsnap.NewReceiver(s.eng)
	if s.cfg.Cluster.ForceNewCluster {
		if err := s.forceNewCluster(); err != nil {
			return err
		}
	}
	if s.raftLog, err = raftlog.Open(s.eng); err != nil {
		return fmt.Errorf("server: open raft log: %w", err)
	}
	if os.Getenv(EnvRetainRaftLog) == "1" {
		s.raftLog.RetainTrimmed()
	}
	if s.members, err = membership.Load(s.eng); err != nil {
		return fmt.Errorf("server: load members: %w", err)
	}
	if s.store, err = mvcc.Open(s.eng, s.lg.Named("mvcc"),
		mvcc.WithCompactionBatchLimit(s.cfg.Quota.CompactionBatchLimit),
		mvcc.WithCompactionSleepInterval(s.cfg.Quota.CompactionSleepInterval)); err != nil {
		return fmt.Errorf("server: open mvcc: %w", err)
	}
	if s.alarms, err = alarm.Load(s.eng); err != nil {
		return fmt.Errorf("server: load alarms: %w", err)
	}
	if err := s.openAuth(); err != nil {
		return err
	}
	if s.lessor, err = lease.New(lease.Config{
		Engine:               s.eng,
		ElectionTimeout:      s.cfg.Raft.ElectionTimeout,
		ExpiredRetryInterval: s.requestTimeout(),
		Logger:               s.lg.Named("lease"),
	}); err != nil {
		return fmt.Errorf("server: open leases: %w", err)
	}
	s.exec = txn.New(s.store, s.lessor, s.lg.Named("txn"), txn.WithMaxRequestBytes(int(s.cfg.GRPC.MaxRequestBytes)))
	// Apply publishes committed events to the hub and returns at once;
	// watchers that fall behind catch up from the store's history.
	s.hub = watch.NewHub(s.store, s.lg.Named("watch"), watch.Options{})
	s.store.OnCommit(s.hub.Notify)
	return nil
}

// bootstrapPeers decides between a fresh start and a restart. A fresh start
// derives every member's ID from --initial-cluster and records this
// member's ID and the cluster ID before raft runs.
func (s *Server) bootstrapPeers() ([]raft.Peer, []*membership.Member, error) {
	if v, err := s.eng.Get(storage.KeyMemberID); err == nil {
		if len(v) != 8 {
			return nil, nil, fmt.Errorf("server: member id record has %d bytes", len(v))
		}
		s.memberID = binary.BigEndian.Uint64(v)
		if s.cfg.Cluster.State == config.ClusterStateNew && s.cfg.IsSet("initial-cluster") {
			s.lg.Info("data dir holds an existing member; ignoring --initial-cluster", zap.String("data-dir", s.cfg.Member.DataDir))
		}
		return nil, nil, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, nil, fmt.Errorf("server: read member id: %w", err)
	}
	if s.cfg.Cluster.State == config.ClusterStateExisting {
		// A member added with MemberAdd, starting for the first time: raft
		// starts empty and the leader sends it the log or a snapshot.
		ms, err := s.joinExisting()
		return nil, ms, err
	}
	var (
		peers []raft.Peer
		ids   []uint64
	)
	for name, urls := range s.cfg.Cluster.InitialMembers {
		peerURLs := urlStrings(urls)
		m := &membership.Member{ID: membership.ComputeMemberID(peerURLs, s.cfg.Cluster.Token), Name: name, PeerURLs: peerURLs}
		// Every member must put identical bootstrap entries in its log, so
		// the context holds only what --initial-cluster says; client URLs
		// are published through Raft once the member serves.
		if name == s.cfg.Member.Name {
			s.memberID = m.ID
		}
		ids = append(ids, m.ID)
		peers = append(peers, raft.Peer{ID: m.ID, Context: m.Encode()})
	}
	if s.memberID == 0 {
		return nil, nil, fmt.Errorf("server: --initial-cluster does not name this member (%q)", s.cfg.Member.Name)
	}
	// In the same order on every member, as etcd does (by ID): raft writes
	// one conf change per peer at term 1, and entries at the same index
	// and term must be the same everywhere (the map above has no order).
	slices.SortFunc(peers, func(a, b raft.Peer) int { return cmp.Compare(a.ID, b.ID) })
	clusterID := membership.ComputeClusterID(ids)
	b := s.eng.NewBatch()
	defer b.Close()
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, s.memberID)
	if err := b.Set(storage.KeyMemberID, v); err != nil {
		return nil, nil, err
	}
	if err := s.members.StageClusterID(b, clusterID); err != nil {
		return nil, nil, err
	}
	if err := b.Commit(true); err != nil {
		return nil, nil, fmt.Errorf("server: record member id: %w", err)
	}
	s.members.SetClusterID(clusterID)
	return peers, nil, nil
}

func (s *Server) startRaft() error {
	peers, joined, err := s.bootstrapPeers()
	if err != nil {
		return err
	}
	var peerClientTLS *tls.Config
	if s.peerTLS != nil {
		peerClientTLS = s.peerTLS.Client
	}
	s.transport = transport.New(transport.Config{
		TLS:       peerClientTLS,
		LocalID:   s.memberID,
		ClusterID: s.members.ClusterID(),
		Logger:    s.lg.Named("transport"),
		Snapshots: s,
		IsRemoved: s.members.IsRemoved,
		Removed: func() {
			s.lg.Warn("a peer says this member was removed from the cluster")
			s.fail(membership.ErrRemoved)
		},
	})
	// Peers come from --initial-cluster on a fresh start and from the
	// replicated member list on a restart.
	if len(peers) > 0 {
		for _, p := range peers {
			m, err := membership.Decode(p.Context)
			if err != nil {
				return err
			}
			if m.ID != s.memberID {
				if err := s.transport.AddPeer(m.ID, m.PeerURLs); err != nil {
					return fmt.Errorf("server: peer %s: %w", m.Name, err)
				}
			}
		}
	} else {
		known := s.members.Members()
		if joined != nil {
			known = joined // the log or a snapshot brings the member list
		}
		for _, m := range known {
			if m.ID != s.memberID {
				if err := s.transport.AddPeer(m.ID, m.PeerURLs); err != nil {
					return fmt.Errorf("server: peer %s: %w", m.Name, err)
				}
			}
		}
	}
	wait := apply.NewWait()
	s.wait = wait
	hb := s.cfg.Raft.HeartbeatInterval
	s.ticker = time.NewTicker(hb)
	// The node is created after the applier so the applier can be handed
	// to it; the applier reaches the node only through this indirection.
	cc := &confChanger{}
	s.applier, err = apply.New(apply.Config{
		Engine:         s.eng,
		Store:          s.store,
		Executor:       s.exec,
		Lessor:         s.lessor,
		Alarms:         s.alarms,
		Auth:           s.auth,
		RaftLog:        s.raftLog,
		Members:        s.members,
		Conf:           cc,
		Snapshots:      s,
		Observer:       s,
		MaxLearners:    s.cfg.Cluster.MaxLearners,
		Wait:           wait,
		Logger:         s.lg.Named("apply"),
		SnapshotCount:  s.cfg.Raft.SnapshotCount,
		CatchupEntries: s.cfg.Raft.SnapshotCatchUpEntries,
		Hooks:          s.applyHooks(),
	})
	if err != nil {
		return fmt.Errorf("server: start apply: %w", err)
	}
	s.node, err = raftnode.Start(raftnode.Config{
		ID:             s.memberID,
		Peers:          peers,
		ElectionTicks:  s.cfg.Raft.ElectionTicks(),
		HeartbeatTicks: 1,
		Tick:           s.ticker.C,
		Storage:        s.raftLog,
		Transport:      s.transport,
		Applied:        s.applier.AppliedIndex(),
		NoSync:         s.cfg.Storage.UnsafeNoFsync,
		PreVote:        s.cfg.Raft.PreVote,
		Logger:         s.lg.Named("raft"),
		Metrics:        s.raftMetrics(),
	})
	if err != nil {
		return fmt.Errorf("server: start raft: %w", err)
	}
	cc.node = s.node
	s.transport.SetRaft(s.node)
	go func() {
		defer close(s.applyDone)
		if err := s.applier.Run(s.node.Applies()); err != nil {
			s.fail(err)
			go s.node.Stop()
		}
	}()
	go func() {
		<-s.node.Done()
		if err := s.node.Err(); err != nil {
			s.fail(err)
		}
	}()
	s.backend = backend.New(backend.Config{
		MemberID:        s.memberID,
		Node:            s.node,
		Applier:         s.applier,
		Wait:            wait,
		Store:           s.store,
		Executor:        s.exec,
		Lessor:          s.lessor,
		Peers:           s.transport,
		Alarms:          s.alarms,
		Auth:            s.auth,
		QuotaBytes:      s.cfg.Quota.EffectiveBackendBytes(),
		RequestTimeout:  s.requestTimeout(),
		MaxRequestBytes: int(s.cfg.GRPC.MaxRequestBytes),
		Logger:          s.lg.Named("backend"),
		ProposalFailed:  s.rel.metrics.ProposalsFailed.Inc,
		Pending:         func(d int) { s.rel.metrics.ProposalsPending.Add(float64(d)) },
	})
	for path, h := range s.backend.LeaseHandlers() {
		s.transport.HandleFunc(path, h)
	}
	s.transport.HandleFunc(pathHashKV, s.serveHashKV)
	s.transport.HandleFunc(pathMembers, s.serveMembers)
	s.transport.HandleFunc(pathPromote, s.servePromote)
	// Peers are served once every handler is in place, so a forwarded call
	// never meets a half-started member.
	if err := s.startPeerListeners(); err != nil {
		return err
	}
	return nil
}

type confChanger struct{ node *raftnode.Node }

func (c *confChanger) ApplyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState {
	return c.node.ApplyConfChange(cc)
}

// waitServingWhileProgressing waits for waitServing in bounded rounds and
// gives up only after a round in which the member made no progress: a
// member catching up through a snapshot of many GiB, or a long log, may
// need far longer than one round, and is not stuck.
func (s *Server) waitServingWhileProgressing() error {
	progress := func() [2]uint64 { return [2]uint64{s.applier.AppliedIndex(), s.snapRecv.Received()} }
	for {
		before := progress()
		ctx, cancel := context.WithTimeout(context.Background(), s.requestTimeout()+s.cfg.Raft.ElectionTimeout*5)
		err := s.waitServing(ctx)
		cancel()
		timedOut := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, backend.ErrTimeout)
		if err == nil || !timedOut || progress() == before {
			return err
		}
		s.lg.Info("still catching up with the cluster", zap.Uint64("applied-index", s.applier.AppliedIndex()),
			zap.Uint64("snapshot-bytes-received", s.snapRecv.Received()))
	}
}

func (s *Server) waitServing(ctx context.Context) error {
	for s.node.Leader() == 0 {
		select {
		case <-s.node.LeaderChanged():
		case <-ctx.Done():
			return ctx.Err()
		case <-s.donec:
			return s.Err()
		}
	}
	if err := s.backend.LinearizableBarrier(ctx); err != nil {
		return err
	}
	return s.publishAttributes(ctx)
}

// publishAttributes replicates this member's name and client URLs, as etcd
// does before it reports ready, so every member lists every client URL.
func (s *Server) publishAttributes(ctx context.Context) error {
	if m := s.members.Member(s.memberID); m != nil && m.Name == s.cfg.Member.Name &&
		slices.Equal(m.ClientURLs, urlStrings(s.cfg.Member.AdvertiseClientURLs)) {
		return nil // already published with these values
	}
	req := &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
		Member_ID: s.memberID,
		MemberAttributes: &membershippb.Attributes{
			Name:       s.cfg.Member.Name,
			ClientUrls: urlStrings(s.cfg.Member.AdvertiseClientURLs),
		},
	}}
	if _, err := s.backend.Propose(ctx, req); err != nil {
		return fmt.Errorf("publish member attributes: %w", err)
	}
	return nil
}

// startPeerListeners serves the raft transport on --listen-peer-urls.
func (s *Server) startPeerListeners() error {
	for _, u := range s.cfg.Member.ListenPeerURLs {
		l, err := s.listen(u, "--listen-peer-urls", s.peerTLS, false)
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: s.transport.Handler(), ReadHeaderTimeout: 10 * time.Second}
		s.peerSrvs = append(s.peerSrvs, hs)
		go func() { _ = hs.Serve(l) }()
	}
	return nil
}

func (s *Server) grpcServer() *grpc.Server {
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
	// to a goroutine per stream, so the pool bounds nothing.
	opts = append(opts, grpc.NumStreamWorkers(uint32(32*runtime.GOMAXPROCS(0))))
	s.authInterceptors()
	s.rel.roleUnary, s.rel.roleStream = s.learnerUnary, s.learnerStream
	opts = append(opts, s.rel.serverOptions()...)
	if key := s.cfg.Testing.PanicKey; key != "" {
		s.lg.Warn("TESTING: a Put of this key panics (METASTORE_TESTING_PANIC_KEY)", zap.String("key", key))
		opts = append(opts, grpc.ChainUnaryInterceptor(panicOnKey(key)))
	}
	srv := grpc.NewServer(opts...)
	registerHealth(srv, s.rel.health)
	hdr := s
	pb.RegisterKVServer(srv, rpc.NewKVServer(s.backend, hdr, s.cfg.GRPC.MaxTxnOps, func(reason string) { s.rel.metrics.ValidationErrors.WithLabelValues(reason).Inc() }))
	pb.RegisterMaintenanceServer(srv, rpc.NewMaintenanceServer(s, hdr))
	pb.RegisterClusterServer(srv, rpc.NewClusterServer(s, hdr))
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

func (s *Server) startListeners() error {
	// The lock and election services run etcd's concurrency recipes over a
	// client of this member, as etcd's do; it dials lazily, once serving.
	selfTLS := s.selfTLS()
	self, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{selfEndpoint(s.cfg.Member.ListenClientURLs)},
		DialTimeout: 5 * time.Second,
		TLS:         selfTLS,
		Logger:      s.lg.Named("self-client"),
		DialOptions: forwardToken(),
	})
	if err != nil {
		return fmt.Errorf("server: self client: %w", err)
	}
	s.self = self
	s.grpcSrv = s.grpcServer()
	var gwHandler http.Handler
	if s.cfg.GRPC.EnableGateway {
		g, err := gateway.New(context.Background(), selfEndpoint(s.cfg.Member.ListenClientURLs), selfTLS)
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		s.gateway = g
		gwHandler = g
	}
	httpHandler := httpapi.New(httpapi.Config{
		Gateway:  gwHandler,
		Probe:    s,
		Versions: httpapi.Versions{Server: version.EtcdAPIVersion, Cluster: version.ClusterVersion, Storage: version.StorageVersion},
		Timeout:  s.requestTimeout(),
		Metrics:  metrics.Handler(s.rel.registry),
		Pprof:    s.cfg.Ops.EnablePprof,
	})
	clientHTTP, err := s.clientHTTP(httpHandler)
	if err != nil {
		return err
	}
	for _, u := range s.cfg.Member.ListenClientURLs {
		l, err := s.listen(u, "--listen-client-urls", s.clientTLS, true)
		if err != nil {
			return err
		}
		if isTLSScheme(u.Scheme) {
			// Over TLS, ALPN tells HTTP/2 from HTTP/1.1, so one HTTP server
			// serves both and hands gRPC calls to the gRPC server, as
			// etcd's secure listeners do.
			hs := &http.Server{Handler: grpcOrHTTP(s.grpcSrv, clientHTTP), ReadHeaderTimeout: 10 * time.Second}
			if err := http2.ConfigureServer(hs, &http2.Server{MaxConcurrentStreams: s.maxStreams()}); err != nil {
				return fmt.Errorf("server: http2 on %s: %w", u.String(), err)
			}
			s.httpSrvs = append(s.httpSrvs, hs)
			go func() { _ = hs.Serve(l) }()
			continue
		}
		m := cmux.New(l)
		grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
		httpL := m.Match(cmux.Any())
		hs := &http.Server{Handler: clientHTTP, ReadHeaderTimeout: 10 * time.Second}
		s.httpSrvs = append(s.httpSrvs, hs)
		s.muxes = append(s.muxes, m)
		go func() { _ = s.grpcSrv.Serve(grpcL) }()
		go func() { _ = hs.Serve(httpL) }()
		go func() {
			if err := m.Serve(); err != nil && !isClosedErr(err) {
				s.lg.Warn("client listener stopped", zap.String("url", u.String()), zap.Error(err))
			}
		}()
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
		go func() { _ = hs.Serve(l) }()
	}
	return nil
}

// grpcOrHTTP routes HTTP/2 gRPC calls to the gRPC server and everything
// else to the HTTP endpoints.
func grpcOrHTTP(g *grpc.Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			g.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) maxStreams() uint32 {
	if n := s.cfg.GRPC.MaxConcurrentStreams; n > 0 {
		return n
	}
	return math.MaxUint32
}

// selfEndpoint is the address this member's own client dials: the first
// client listener, with a wildcard host replaced by loopback.
func selfEndpoint(us []url.URL) string {
	if len(us) == 0 {
		return "127.0.0.1:2379"
	}
	u := selfURL(us)
	if isUnixScheme(u.Scheme) {
		return "unix://" + unixSocketPath(u)
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

// selfURL is the client URL this member's own client dials: the first TCP
// one, since a relative unix socket path depends on the working directory,
// or the first URL when all are unix sockets.
func selfURL(us []url.URL) url.URL {
	for _, u := range us {
		if !isUnixScheme(u.Scheme) {
			return u
		}
	}
	return us[0]
}

func isClosedErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "use of closed network connection")
}

// Stop shuts the member down in the seed's four phases: stop accepting
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

func (s *Server) registerShutdown() {
	if s.rel == nil {
		s.rel = &reliability{}
	}
	if s.rel.shutdown != nil {
		return
	}
	sd := lifecycle.NewShutdown(s.lg.Named("shutdown"), lifecycle.WithShutdownTimeout(s.cfg.Limits.ShutdownTimeout))
	s.rel.shutdown = sd
	sd.RegisterHook(lifecycle.PhaseStopAccepting, "health-not-serving", func(context.Context) error {
		if s.rel.health != nil {
			s.rel.health.SetNotServing()
		}
		return nil
	})
	sd.RegisterHook(lifecycle.PhaseStopAccepting, "close-listeners", func(context.Context) error {
		for _, l := range s.listeners {
			_ = l.Close()
		}
		return nil
	})
	sd.RegisterHook(lifecycle.PhaseDrain, "grpc", func(ctx context.Context) error {
		if s.grpcSrv == nil {
			return nil
		}
		done := make(chan struct{})
		go func() { s.grpcSrv.GracefulStop(); close(done) }()
		// Unary requests finish by themselves; streams (watches, lease
		// keep-alives) never do. Once no unary request is in flight, the
		// streams are closed, as etcd closes them, and their clients
		// reconnect to another member.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				s.grpcSrv.Stop()
				return fmt.Errorf("in-flight gRPC requests cut off: %w", ctx.Err())
			case <-tick.C:
				if s.rel.limiter.Stats().CurrentRequests == 0 {
					s.grpcSrv.Stop()
					<-done
					return nil
				}
			}
		}
	})
	sd.RegisterHook(lifecycle.PhaseDrain, "http", func(ctx context.Context) error {
		var errs []error
		for _, hs := range s.httpSrvs {
			// The listeners were closed in the first phase; Shutdown closing
			// them again is not a failure.
			if err := hs.Shutdown(ctx); err != nil && !isClosedErr(err) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
	sd.RegisterHook(lifecycle.PhaseDrain, "self-clients", func(context.Context) error {
		var errs []error
		if s.self != nil {
			errs = append(errs, s.self.Close())
		}
		if s.gateway != nil {
			errs = append(errs, s.gateway.Close())
		}
		return errors.Join(errs...)
	})
	sd.RegisterHook(lifecycle.PhasePersist, "raft-and-apply", func(context.Context) error {
		if s.node != nil {
			s.node.Stop()
			<-s.applyDone
		}
		if s.ticker != nil {
			s.ticker.Stop()
		}
		if s.eng != nil {
			if err := s.eng.Sync(); err != nil {
				return fmt.Errorf("sync storage: %w", err)
			}
		}
		return nil
	})
	sd.RegisterHook(lifecycle.PhaseClose, "peers", func(ctx context.Context) error {
		// Peer traffic is needed until raft stops, so the transport closes last.
		for _, hs := range s.peerSrvs {
			_ = hs.Close()
		}
		if s.transport != nil {
			s.transport.Stop()
		}
		return nil
	})
	sd.RegisterHook(lifecycle.PhaseClose, "storage", func(context.Context) error {
		if s.rel.supervisor != nil {
			s.rel.supervisor.Stop()
		}
		if s.hub != nil {
			s.hub.Close() // its catch-up reads the store
		}
		if s.store != nil {
			s.store.Close() // background compaction must stop before the engine closes
		}
		if s.eng != nil {
			if err := s.eng.Close(); err != nil {
				return fmt.Errorf("close storage: %w", err)
			}
		}
		return nil
	})
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
