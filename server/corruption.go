package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/corruption"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/transport"
)

// localHash is this member's HashKV at rev, for the corruption check.
func (s *Server) localHash(ctx context.Context, rev int64) (corruption.Hash, error) {
	h, err := s.store.HashByRev(ctx, rev)
	if err != nil {
		return corruption.Hash{}, err
	}
	return corruption.Hash{Hash: h.Hash, CompactRevision: h.CompactRevision, HashRevision: h.HashRevision}, nil
}

// initialCorruptionCheck is etcd's InitialCorruptCheck
// (--feature-gates=InitialCorruptCheck=true): a member that already holds
// data compares its HashKV at its current revision with its peers' before
// Raft starts and before it serves peers or clients, and refuses to start
// (corruption.InitialCheck's error) if a peer's data differs. Start calls
// it once storage is open; a new member has nothing to compare, as in etcd.
func (s *Server) initialCorruptionCheck(ctx context.Context) error {
	if !s.cfg.Features.Enabled(config.FeatureInitialCorruptCheck) {
		return nil
	}
	self, initialized, err := membership.ReadLocalID(s.eng)
	if err != nil {
		return fmt.Errorf("server: initial corruption check: %w", err)
	}
	if !initialized {
		return nil
	}
	// The transport does not exist yet (Raft has not started), so the
	// peers' HashKV route is asked directly at their peer URLs, with the
	// peer TLS settings and the headers the route checks.
	var peerClientTLS *tls.Config
	if s.peerTLS != nil {
		peerClientTLS = s.peerTLS.Client
	}
	rt := &http.Transport{Proxy: nil, TLSClientConfig: peerClientTLS, DisableKeepAlives: true,
		DialContext: (&net.Dialer{LocalAddr: transport.LocalTCPAddr(s.peerLocal)}).DialContext}
	defer rt.CloseIdleConnections()
	hdr := http.Header{}
	hdr.Set(transport.HeaderClusterID, strconv.FormatUint(s.members.ClusterID(), 16))
	hdr.Set(transport.HeaderFrom, strconv.FormatUint(self, 16))
	lg := s.lg.Named("corruption-check")
	t := initialTarget{s: s, self: self, caller: corruption.URLCaller{
		Client: &http.Client{Transport: rt},
		Header: hdr,
		URLs:   s.peerURLs,
		Logger: lg,
	}}
	if err := corruption.InitialCheck(ctx, t, s.requestTimeout(), lg); err != nil {
		lg.Error("checkInitialHashKV failed", zap.Error(err))
		return err
	}
	return nil
}

// peerURLs are member id's peer URLs from the replicated member list.
func (s *Server) peerURLs(id uint64) []string {
	if m := s.members.Member(id); m != nil {
		return m.PeerURLs
	}
	return nil
}

// initialTarget is the starting member for corruption.InitialCheck.
type initialTarget struct {
	s      *Server
	self   uint64
	caller corruption.URLCaller
}

func (t initialTarget) Self() uint64             { return t.self }
func (t initialTarget) Rev() int64               { return t.s.store.Rev() }
func (t initialTarget) Peers() []corruption.Peer { return peersOf(t.s, t.self) }
func (t initialTarget) LocalHash(ctx context.Context, rev int64) (corruption.Hash, error) {
	return t.s.localHash(ctx, rev)
}

func (t initialTarget) PeerHash(ctx context.Context, p corruption.Peer, rev int64) (corruption.Hash, error) {
	return corruption.FetchPeerHash(ctx, t.caller, p.ID, rev)
}

// peersOf lists the members other than self.
func peersOf(s *Server, self uint64) []corruption.Peer {
	var out []corruption.Peer
	for _, m := range s.members.Members() {
		if m.ID != self {
			out = append(out, corruption.Peer{ID: m.ID, ClientURLs: m.ClientURLs, PeerURLs: m.PeerURLs})
		}
	}
	return out
}

// startCorruptionCheck runs etcd's --corrupt-check-time check on the leader.
func (s *Server) startCorruptionCheck() {
	lg := s.lg.Named("corruption-check")
	s.superviseEvery("corruption-check", s.cfg.Ops.CorruptCheckTime, func(ctx context.Context, tick <-chan time.Time) {
		corruption.Run(ctx, tick, corruptionTarget{s}, lg)
	})
}

type corruptionTarget struct{ s *Server }

func (t corruptionTarget) IsLeader() bool { return t.s.node.IsLeader() }
func (t corruptionTarget) Self() uint64   { return t.s.memberID }
func (t corruptionTarget) Rev() int64     { return t.s.store.Rev() }

func (t corruptionTarget) Peers() []corruption.Peer { return peersOf(t.s, t.s.memberID) }

func (t corruptionTarget) LocalHash(ctx context.Context, rev int64) (corruption.Hash, error) {
	return t.s.localHash(ctx, rev)
}

func (t corruptionTarget) PeerHash(ctx context.Context, p corruption.Peer, rev int64) (corruption.Hash, error) {
	return corruption.FetchPeerHash(ctx, t.s.transport, p.ID, rev)
}

func (t corruptionTarget) RaiseCorrupt(ctx context.Context, id uint64) error {
	res, err := t.s.backend.Propose(ctx, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: id, Alarm: pb.AlarmType_CORRUPT,
	}})
	if err != nil {
		return err
	}
	return res.Err
}
