package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/corruption"
)

// pathHashKV serves this member's HashKV to the leader's corruption check
// over the peer transport, which needs no client credentials even when auth
// is on, and uses the peer TLS settings.
const pathHashKV = "/raft/hashkv"

func (s *Server) serveHashKV(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8))
	if err != nil || len(body) != 8 {
		http.Error(w, "want an 8-byte revision", http.StatusBadRequest)
		return
	}
	h, err := s.store.HashByRev(int64(binary.BigEndian.Uint64(body)))
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	out := make([]byte, 0, 20)
	out = binary.BigEndian.AppendUint32(out, h.Hash)
	out = binary.BigEndian.AppendUint64(out, uint64(h.CompactRevision))
	out = binary.BigEndian.AppendUint64(out, uint64(h.HashRevision))
	_, _ = w.Write(out)
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

func (t corruptionTarget) LocalHash(rev int64) (corruption.Hash, error) {
	h, err := t.s.store.HashByRev(rev)
	if err != nil {
		return corruption.Hash{}, err
	}
	return corruption.Hash{Hash: h.Hash, CompactRevision: h.CompactRevision, HashRevision: h.HashRevision}, nil
}

func (t corruptionTarget) PeerHash(ctx context.Context, p corruption.Peer, rev int64) (corruption.Hash, error) {
	body := binary.BigEndian.AppendUint64(nil, uint64(rev))
	resp, err := t.s.transport.Do(ctx, p.ID, http.MethodPost, pathHashKV, body)
	if err != nil {
		return corruption.Hash{}, fmt.Errorf("%w: %v", corruption.ErrSkip, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if err != nil || resp.StatusCode != http.StatusOK || len(data) != 20 {
		return corruption.Hash{}, fmt.Errorf("%w: status %d: %s", corruption.ErrSkip, resp.StatusCode, data)
	}
	return corruption.Hash{
		Hash:            binary.BigEndian.Uint32(data),
		CompactRevision: int64(binary.BigEndian.Uint64(data[4:])),
		HashRevision:    int64(binary.BigEndian.Uint64(data[12:])),
	}, nil
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
