package server

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/corruption"
)

// localHash is this member's HashKV at rev, for the corruption check.
func (s *Server) localHash(rev int64) (corruption.Hash, error) {
	h, err := s.store.HashByRev(rev)
	if err != nil {
		return corruption.Hash{}, err
	}
	return corruption.Hash{Hash: h.Hash, CompactRevision: h.CompactRevision, HashRevision: h.HashRevision}, nil
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

func (t corruptionTarget) Peers() []corruption.Peer {
	var out []corruption.Peer
	for _, m := range t.s.members.Members() {
		if m.ID != t.s.memberID {
			out = append(out, corruption.Peer{ID: m.ID, ClientURLs: m.ClientURLs})
		}
	}
	return out
}

func (t corruptionTarget) LocalHash(rev int64) (corruption.Hash, error) { return t.s.localHash(rev) }

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
