package leadership

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// peerWaitForTickAdvance bounds the wait for peer connections before the
// election ticks are advanced: etcd's rafthttp.ConnReadTimeout.
const peerWaitForTickAdvance = 5 * time.Second

// tickAdvancePoll is how often the peer connections are counted.
const tickAdvancePoll = 50 * time.Millisecond

// TickRaft is the raft node whose logical clock is advanced.
type TickRaft interface {
	AdvanceTicks(n int)
	// Done is closed when the node stopped.
	Done() <-chan struct{}
}

// TickPeers is the transport: the peers and since when each is reachable
// (zero: not now).
type TickPeers interface {
	Peers() []uint64
	ActiveSince(id uint64) time.Time
}

// TickConfig wires AdvanceElectionTicks.
type TickConfig struct {
	Self  uint64
	Raft  TickRaft
	Peers TickPeers
	// Enabled is --initial-election-tick-advance.
	Enabled           bool
	ElectionTicks     int
	HeartbeatInterval time.Duration
	// Stop ends the wait early (the member failed or stops).
	Stop <-chan struct{}
	// Poll and Deadline replace the 50 ms poll and the 5 s bound (tests);
	// nil means real timers.
	Poll     <-chan time.Time
	Deadline <-chan time.Time
	Logger   *zap.Logger
}

// AdvanceElectionTicks does what etcd's adjustTicks does for a member of
// several (a single member campaigns at once, internal/raftnode): when
// enabled it waits, polling every 50 ms for at most 5 s, until more than
// one peer is connected, then fast-forwards the clock to two ticks before
// an election timeout, so that a cluster whose leader is gone elects a new
// one without waiting a full timeout. It reports whether it advanced.
func AdvanceElectionTicks(c TickConfig) bool {
	lg := c.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	peers := c.Peers.Peers()
	if len(peers) == 0 {
		return false
	}
	ticks := c.ElectionTicks
	if !c.Enabled {
		lg.Info("skipping initial election tick advance", zap.Int("election-ticks", ticks))
		return false
	}
	lg.Info("starting initial election tick advance", zap.Int("election-ticks", ticks))
	if c.Poll == nil {
		t := time.NewTicker(tickAdvancePoll)
		defer t.Stop()
		c.Poll = t.C
	}
	if c.Deadline == nil {
		t := time.NewTimer(peerWaitForTickAdvance)
		defer t.Stop()
		c.Deadline = t.C
	}
	for {
		select {
		case <-c.Poll:
		case <-c.Deadline:
			return false
		case <-c.Stop:
			return false
		case <-c.Raft.Done():
			return false
		}
		active := 0
		for _, id := range peers {
			if !c.Peers.ActiveSince(id).IsZero() {
				active++
			}
		}
		if active > 1 {
			forward := ticks - 2
			hb := c.HeartbeatInterval
			lg.Info("initialized peer connections; fast-forwarding election ticks",
				zap.String("local-member-id", fmt.Sprintf("%x", c.Self)),
				zap.Int("forward-ticks", forward),
				zap.String("forward-duration", (time.Duration(forward)*hb).String()),
				zap.Int("election-ticks", ticks),
				zap.String("election-timeout", (time.Duration(ticks)*hb).String()),
				zap.Int("active-remote-members", active))
			c.Raft.AdvanceTicks(forward)
			return true
		}
	}
}
