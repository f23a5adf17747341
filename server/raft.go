package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/backend"
	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/corruption"
	"github.com/metastore/metastore/internal/discovery"
	"github.com/metastore/metastore/internal/downgrade"
	"github.com/metastore/metastore/internal/member/bootstrap"
	"github.com/metastore/metastore/internal/member/leadership"
	"github.com/metastore/metastore/internal/member/peers"
	"github.com/metastore/metastore/internal/member/reconfig"
	"github.com/metastore/metastore/internal/member/snapinstall"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/peerapi"
	"github.com/metastore/metastore/internal/raftnode"
	"github.com/metastore/metastore/internal/transport"
)

// startRaft settles the member's identity and wires the consensus side:
// transport, peer set, applier, raft node, backend, membership changes and
// the peer routes; then it serves the peer listeners.
func (s *Server) startRaft(ctx context.Context) error {
	var peerClientTLS *tls.Config
	if s.peerTLS != nil {
		peerClientTLS = s.peerTLS.Client
	}
	boot, err := bootstrap.Run(bootstrap.Config{
		Engine:            s.eng,
		Members:           s.members,
		Name:              s.cfg.Member.Name,
		InitialMembers:    initialMembers(s.cfg.Cluster.InitialMembers),
		Token:             s.cfg.Cluster.Token,
		InitialClusterSet: s.cfg.IsSet("initial-cluster"),
		Join:              s.cfg.Cluster.State == config.ClusterStateExisting,
		AdvertisePeerURLs: urlStrings(s.cfg.Member.AdvertisePeerURLs),
		PeerTLS:           peerClientTLS,
		PeerLocalAddr:     transport.LocalTCPAddr(s.peerLocal),
		DataDir:           s.cfg.Member.DataDir,
		Discover:          func() (map[string][]string, error) { return s.discover(ctx) },
		Logger:            s.lg.Named("bootstrap"),
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.memberID = boot.MemberID
	s.snaps = snapinstall.New(snapinstall.Config{
		Engine:    s.eng,
		Receiver:  s.snapRecv,
		RaftLog:   s.raftLog,
		MVCC:      s.store,
		Leases:    s.lessor,
		Auth:      s.auth,
		Alarms:    s.alarms,
		Members:   s.members,
		Watch:     s.hub,
		SyncPeers: func(ms []*membership.Member) { s.peers.Sync(ms) },
		Applied:   func() uint64 { return s.applier.AppliedIndex() },
		Commit:    func() uint64 { return s.node.Status().GetCommit() },
		Logger:    s.lg.Named("snapshot"),
	})
	s.transport = transport.New(transport.Config{
		TLS:       peerClientTLS,
		LocalID:   s.memberID,
		ClusterID: s.members.ClusterID(),
		Logger:    s.lg.Named("transport"),
		Snapshots: s.snaps,
		// --raft-write-timeout bounds each write on connections to peers.
		WriteTimeout: s.cfg.Raft.PeerWriteTimeout,
		IsRemoved:    s.members.IsRemoved,
		LocalAddr:    s.peerLocal,
		Removed: func() {
			s.lg.Warn("a peer says this member was removed from the cluster")
			s.fail(membership.ErrRemoved)
		},
	})
	s.peers = peers.New(peers.Config{
		Self:         s.memberID,
		Transport:    s.transport,
		Removed:      func() { s.fail(membership.ErrRemoved) },
		RemovedDelay: 10 * s.cfg.Raft.HeartbeatInterval,
		Logger:       s.lg.Named("peers"),
	})
	s.peers.Reach(boot.Reach)
	s.wait = apply.NewWait()
	s.ticker = time.NewTicker(s.cfg.Raft.HeartbeatInterval)
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
		Snapshots:      s.snaps,
		Observer:       s.peers,
		MaxLearners:    s.cfg.Cluster.MaxLearners,
		Wait:           s.wait,
		Logger:         s.lg.Named("apply"),
		SnapshotCount:  s.cfg.Raft.SnapshotCount,
		CatchupEntries: s.cfg.Raft.SnapshotCatchUpEntries,
		CatchupBytes:   uint64(s.cfg.Raft.SnapshotCatchUpBytes),
		Hooks:          s.applyHooks(),

		WarnApplyDuration: s.cfg.Ops.WarningApplyDuration,
	})
	if err != nil {
		return fmt.Errorf("server: start apply: %w", err)
	}
	s.node, err = raftnode.Start(raftnode.Config{
		ID:             s.memberID,
		Peers:          boot.Peers,
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
		Gather:         gather(s.cfg.Raft.GatherWindow),
	})
	if err != nil {
		return fmt.Errorf("server: start raft: %w", err)
	}
	cc.node = s.node
	s.transport.SetRaft(s.node)
	go leadership.AdvanceElectionTicks(leadership.TickConfig{
		Self: s.memberID, Raft: s.node, Peers: s.transport, Enabled: s.cfg.Raft.InitialElectionTickAdvance,
		ElectionTicks: s.cfg.Raft.ElectionTicks(), HeartbeatInterval: s.cfg.Raft.HeartbeatInterval,
		Stop: s.donec, Logger: s.lg.Named("raft"),
	})
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
		Wait:            s.wait,
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
		// etcd's FastLeaseKeepAlive gate (on by default).
		RenewWaitsForApply: !s.cfg.Features.Enabled(config.FeatureFastLeaseKeepAlive),
	})
	s.reconf = reconfig.New(reconfig.Config{
		Self:                s.memberID,
		Members:             s.members,
		Node:                s.node,
		Backend:             s.backend,
		Peers:               s.transport,
		Wait:                s.wait,
		StrictReconfigCheck: s.cfg.Cluster.StrictReconfigCheck,
		RequestTimeout:      s.requestTimeout(),
		Logger:              s.lg.Named("reconfig"),
	})
	s.leadership = leadership.New(leadership.Config{
		Self: s.memberID, Raft: s.node, Peers: s.transport, Members: s.members,
		RequestTimeout: s.requestTimeout(), ElectionTimeout: s.cfg.Raft.ElectionTimeout,
		Logger: s.lg.Named("leadership"),
	})
	lease := s.backend.LeaseHandlers()
	if err := (peerapi.Handlers{
		LeaseRenew:      lease[peerapi.PathLeaseRenew],
		LeaseTimeToLive: lease[peerapi.PathLeaseTimeToLive],
		HashKV:          corruption.ServeHashKV(s.localHash),
		Members:         bootstrap.ServeMembers(s.members),
		Promote:         s.reconf.ServePromote,
		Version:         downgrade.ServeVersion,
	}).Register(s.transport); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	// Peers are served once every handler is in place, so a forwarded call
	// never meets a half-started member.
	return s.startPeerListeners()
}

// peerLocalAddr is the address peer connections are dialed from:
// etcd's choice with --feature-gates=SetMemberLocalAddr=true, else the
// kernel's.
func (s *Server) peerLocalAddr() string {
	if !s.cfg.Features.Enabled(config.FeatureSetMemberLocalAddr) {
		return ""
	}
	return transport.LocalAddr(s.cfg.Member.AdvertisePeerURLs, s.lg)
}

// discover is bootstrap.Config.Discover: --initial-cluster as the discovery
// service (if one is configured) answers it. ctx is start's: a signal while
// the member waits for the discovery service's other members ends the wait.
func (s *Server) discover(ctx context.Context) (map[string][]string, error) {
	m := discovery.FromFlags(s.cfg, s.lg.Named("discovery"))
	if !m.Configured() {
		return initialMembers(s.cfg.Cluster.InitialMembers), nil
	}
	return m.InitialCluster(ctx)
}

type confChanger struct{ node *raftnode.Node }

func (c *confChanger) ApplyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState {
	return c.node.ApplyConfChange(cc)
}

// awaitServing waits, without a deadline (bootstrap.AwaitServing), for a
// leader, a linearizable barrier and the publication of this member's name
// and client URLs.
func (s *Server) awaitServing(ctx context.Context) error {
	return bootstrap.AwaitServing(ctx, bootstrap.ServeConfig{
		Raft: s.node,
		Ready: func(ctx context.Context) error {
			if err := s.backend.LinearizableBarrier(ctx); err != nil {
				return err
			}
			return bootstrap.Publish(ctx, s.backend, s.members, s.memberID, s.cfg.Member.Name, urlStrings(s.cfg.Member.AdvertiseClientURLs))
		},
		Applied: s.applier.AppliedIndex, SnapshotBytes: s.snapRecv.Received,
		Round:  s.requestTimeout() + s.cfg.Raft.ElectionTimeout*5,
		Failed: s.donec, Err: s.Err, Logger: s.lg,
	})
}

// startPeerListeners serves the raft transport on --listen-peer-urls.
func (s *Server) startPeerListeners() error {
	for _, l := range s.peerLns {
		// As on etcd's peer listeners (rafthttp's ConnReadTimeout), reading a
		// request is bounded by --raft-read-timeout, so a peer that stalls
		// mid-request cannot hold a connection and a handler for ever; the
		// long-lived message and snapshot streams lift the bound for
		// themselves (internal/transport). --raft-write-timeout bounds the
		// writes on the connections this member dials
		// (transport.Config.WriteTimeout).
		hs := &http.Server{
			Handler:           s.transport.Handler(),
			ReadHeaderTimeout: min(10*time.Second, s.cfg.Raft.PeerReadTimeout),
			ReadTimeout:       s.cfg.Raft.PeerReadTimeout,
		}
		s.peerSrvs = append(s.peerSrvs, hs)
		go func() { _ = hs.Serve(l) }()
	}
	s.peerLns = nil
	return nil
}

// bindPeerListeners binds --listen-peer-urls; startPeerListeners serves them
// once every peer route is in place.
func (s *Server) bindPeerListeners() error {
	for _, u := range s.cfg.Member.ListenPeerURLs {
		l, err := s.listen(u, "--listen-peer-urls", s.peerTLS, false)
		if err != nil {
			return err
		}
		s.peerLns = append(s.peerLns, l)
	}
	return nil
}

// initialMembers is --initial-cluster with URLs as strings.
func initialMembers(in map[string][]url.URL) map[string][]string {
	out := make(map[string][]string, len(in))
	for name, us := range in {
		out[name] = urlStrings(us)
	}
	return out
}

// gather is the group commit of --raft-gather-window (ADR 27; 0 = off): a
// gathering starts after a synced save of at least 16 entries (fewer
// concurrent writers than that never wait) and ends once a quarter of the
// window brought no proposal.
func gather(window time.Duration) raftnode.Gather {
	return raftnode.Gather{Window: window, Idle: window / 4, Min: 16}
}
