package server

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// peerWaitForTickAdvance bounds the wait for peer connections before the
// election ticks are advanced: etcd's rafthttp.ConnReadTimeout.
const peerWaitForTickAdvance = 5 * time.Second

// advanceElectionTicks does what etcd's adjustTicks does for a member of
// several (a single member campaigns at once, internal/raftnode): with
// --initial-election-tick-advance it waits, polling every 50 ms for at
// most 5 s, until more than one peer is connected, then fast-forwards the
// clock to two ticks before an election timeout, so that a cluster whose
// leader is gone elects a new one without waiting a full timeout.
func (s *Server) advanceElectionTicks() {
	peers := s.transport.Peers()
	if len(peers) == 0 {
		return
	}
	ticks := s.cfg.Raft.ElectionTicks()
	if !s.cfg.Raft.InitialElectionTickAdvance {
		s.lg.Info("skipping initial election tick advance", zap.Int("election-ticks", ticks))
		return
	}
	s.lg.Info("starting initial election tick advance", zap.Int("election-ticks", ticks))
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	deadline := time.After(peerWaitForTickAdvance)
	for {
		select {
		case <-poll.C:
		case <-deadline:
			return
		case <-s.donec:
			return
		case <-s.node.Done():
			return
		}
		active := 0
		for _, id := range peers {
			if !s.transport.ActiveSince(id).IsZero() {
				active++
			}
		}
		if active > 1 {
			forward := ticks - 2
			hb := s.cfg.Raft.HeartbeatInterval
			s.lg.Info("initialized peer connections; fast-forwarding election ticks",
				zap.String("local-member-id", fmt.Sprintf("%x", s.memberID)),
				zap.Int("forward-ticks", forward),
				zap.String("forward-duration", (time.Duration(forward)*hb).String()),
				zap.Int("election-ticks", ticks),
				zap.String("election-timeout", (time.Duration(ticks)*hb).String()),
				zap.Int("active-remote-members", active))
			s.node.AdvanceTicks(forward)
			return
		}
	}
}
