package transport

import (
	"context"
	"fmt"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/raftnode"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

// raftnode.Node is what the server hands the transport.
var _ Raft = (*raftnode.Node)(nil)

// member is one raft member of a test cluster: a raftnode on a memory
// engine, a Transport, and an httptest server as its peer listener.
type member struct {
	id      uint64
	eng     storage.Engine
	node    *raftnode.Node
	tr      *Transport
	srv     *httptest.Server
	ticker  *time.Ticker
	onApply func(e *raftpb.Entry)
	applied chan *raftpb.Entry // used when onApply is nil
	applyWG chan struct{}      // closed when the apply loop exits
}

type cluster struct {
	tb      testing.TB
	lg      *zap.Logger
	members map[uint64]*member
}

func testLogger(tb testing.TB) *zap.Logger {
	if _, ok := tb.(*testing.B); ok {
		return zap.NewNop()
	}
	return zaptest.NewLogger(tb, zaptest.Level(zap.WarnLevel))
}

// newCluster starts n members bootstrapped together.
func newCluster(tb testing.TB, n int, onApply func(id uint64, e *raftpb.Entry)) *cluster {
	tb.Helper()
	c := &cluster{tb: tb, lg: testLogger(tb), members: map[uint64]*member{}}
	var peers []raft.Peer
	for i := 1; i <= n; i++ {
		peers = append(peers, raft.Peer{ID: uint64(i)})
	}
	for _, p := range peers {
		m := &member{id: p.ID, eng: memory.New()}
		if onApply != nil {
			id := p.ID
			m.onApply = func(e *raftpb.Entry) { onApply(id, e) }
		}
		c.members[p.ID] = m
		c.listen(m)
	}
	for _, m := range c.members {
		c.connect(m)
	}
	for _, m := range c.members {
		c.start(m, peers)
	}
	tb.Cleanup(func() {
		for _, m := range c.members {
			c.stop(m)
		}
	})
	return c
}

// listen creates the member's transport and peer listener.
func (c *cluster) listen(m *member) {
	m.tr = New(Config{LocalID: m.id, ClusterID: 0xc1, Logger: c.lg.Named(fmt.Sprint(m.id))})
	m.srv = newPeerServer(m.tr)
}

// connect tells m where the other members are.
func (c *cluster) connect(m *member) {
	for id, o := range c.members {
		if id != m.id {
			if err := m.tr.AddPeer(id, []string{o.srv.URL}); err != nil {
				c.tb.Fatal(err)
			}
		}
	}
}

func (c *cluster) start(m *member, peers []raft.Peer) {
	log, err := raftlog.Open(m.eng)
	if err != nil {
		c.tb.Fatal(err)
	}
	m.ticker = time.NewTicker(10 * time.Millisecond)
	m.applied = make(chan *raftpb.Entry, 8192)
	m.applyWG = make(chan struct{})
	m.node, err = raftnode.Start(raftnode.Config{
		ID: m.id, Peers: peers, ElectionTicks: 10, HeartbeatTicks: 1,
		Tick: m.ticker.C, Storage: log, Transport: m.tr, PreVote: true, NoSync: true,
		Logger: c.lg.Named(fmt.Sprint(m.id)),
	})
	if err != nil {
		c.tb.Fatal(err)
	}
	m.tr.SetRaft(m.node)
	node := m.node
	go func() {
		defer close(m.applyWG)
		for ap := range node.Applies() {
			for _, e := range ap.Entries {
				switch e.GetType() {
				case raftpb.EntryType_EntryConfChange:
					var cc raftpb.ConfChange
					if err := proto.Unmarshal(e.Data, &cc); err != nil {
						panic(err)
					}
					cs := node.ApplyConfChange(&cc)
					b := m.eng.NewBatch()
					if err := raftlog.StageConfState(b, cs); err != nil {
						panic(err)
					}
					if err := b.Commit(false); err != nil {
						panic(err)
					}
					_ = b.Close()
					log.SetConfState(cs)
				case raftpb.EntryType_EntryNormal:
					if len(e.Data) == 0 {
						continue
					}
					if m.onApply != nil {
						m.onApply(e)
					} else {
						m.applied <- e
					}
				}
			}
			ap.Done()
		}
	}()
}

// stop stops the member's node, transport and listener; its engine stays.
func (c *cluster) stop(m *member) {
	if m.node == nil {
		return
	}
	m.node.Stop()
	<-m.applyWG
	m.ticker.Stop()
	m.tr.Stop()
	m.srv.Close()
	m.node = nil
}

// restart starts a stopped member on its engine with a new transport and
// listener, and points the others at its new address.
func (c *cluster) restart(m *member) {
	c.listen(m)
	c.connect(m)
	for id, o := range c.members {
		if id != m.id && o.node != nil {
			if err := o.tr.UpdatePeer(m.id, []string{m.srv.URL}); err != nil {
				c.tb.Fatal(err)
			}
		}
	}
	c.start(m, nil)
}

// waitLeader waits until every running member agrees on one leader.
func (c *cluster) waitLeader(ctx context.Context) uint64 {
	c.tb.Helper()
	for {
		cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
		var lead uint64
		agreed := true
		for _, m := range c.members {
			if m.node == nil {
				continue
			}
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(m.node.LeaderChanged())})
			l := m.node.Leader()
			if l == 0 || (lead != 0 && l != lead) {
				agreed = false
			}
			lead = l
		}
		if agreed && lead != 0 && c.members[lead].node != nil {
			return lead
		}
		if i, _, _ := reflect.Select(cases); i == 0 {
			c.tb.Fatalf("no leader agreed on: %v", ctx.Err())
		}
	}
}

// expect reads m's applied entries until it has seen want, in order.
func (c *cluster) expect(ctx context.Context, m *member, want []string) {
	c.tb.Helper()
	for i, w := range want {
		select {
		case e := <-m.applied:
			if string(e.Data) != w {
				c.tb.Fatalf("member %d applied %q as entry %d, want %q", m.id, e.Data, i, w)
			}
		case <-ctx.Done():
			c.tb.Fatalf("member %d applied only %d of %d entries: %v", m.id, i, len(want), ctx.Err())
		}
	}
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func TestThreeMembersReplicateAndCatchUp(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lead := c.waitLeader(ctx)
	var follower uint64
	for id := range c.members {
		if id != lead {
			follower = id
			break
		}
	}

	propose := func(on uint64, data []string) {
		for _, d := range data {
			if err := c.members[on].node.Propose(ctx, []byte(d)); err != nil {
				t.Fatalf("propose %q on %d: %v", d, on, err)
			}
		}
	}
	// Proposals made on the leader, then forwarded by a follower (MsgProp
	// over the transport): every member applies both in order.
	v, f := seq("v", 50), seq("f", 50)
	propose(lead, v)
	for _, m := range c.members {
		c.expect(ctx, m, v)
	}
	propose(follower, f)
	for _, m := range c.members {
		c.expect(ctx, m, f)
	}

	// A follower stops; the others keep committing without it.
	down := c.members[follower]
	c.stop(down)
	after := seq("after", 50)
	propose(lead, after)
	for id, m := range c.members {
		if id != follower {
			c.expect(ctx, m, after)
		}
	}

	// It restarts on its data with a new transport and address, and
	// catches up: raft replays its whole log into the apply loop.
	c.restart(down)
	if lead2 := c.waitLeader(ctx); lead2 == 0 {
		t.Fatal("no leader after restart")
	}
	all := append(append(append([]string{}, v...), f...), after...)
	c.expect(ctx, down, all)

	last := []string{"last"}
	propose(c.waitLeader(ctx), last)
	for _, m := range c.members {
		c.expect(ctx, m, last)
	}
	for id, m := range c.members {
		if s := m.tr.Stats(); s.CorruptFrames != 0 || s.RejectedStreams != 0 || s.RejectedMessages != 0 {
			t.Errorf("member %d: unexpected transport errors: %+v", id, s)
		}
	}
}
