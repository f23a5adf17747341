package simcluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/clock"
	"github.com/metastore/metastore/internal/member/bootstrap"
	"github.com/metastore/metastore/internal/membership"
)

// Options shape a Cluster.
type Options struct {
	// ElectionTicks is raft's election timeout in ticks (10 when zero);
	// a tick stands for 100 ms of the lessor's clock arithmetic.
	ElectionTicks int
	// SnapshotCount and CatchupEntries are --snapshot-count and
	// --snapshot-catchup-entries (0: the log is never compacted).
	SnapshotCount, CatchupEntries uint64
	// MaxLearners is --max-learners (1 when zero, etcd's default).
	MaxLearners int
	// NoStrictReconfigCheck is --strict-reconfig-check=false.
	NoStrictReconfigCheck bool
}

// Cluster is a set of simulated members and the network between them. It
// is not safe for concurrent use: the test's goroutine drives it.
type Cluster struct {
	opts Options
	// Clock is the time every lessor and token provider reads.
	Clock   *clock.Fake
	members map[uint64]*Member
	queue   []*raftpb.Message
	// group maps a member to its side of a partition; empty when healed.
	group map[uint64]int
	// upSince is since when each link (lower ID first) has carried
	// messages both ways: what transport.ActiveSince reports.
	upSince map[[2]uint64]time.Time
	// pending are the proposals not yet applied on their proposer.
	pending []*proposal
	nextReq uint64
	events  []string // since the last TakeEvents
	trace   []string // everything, messages included
	// dir holds the members' staged Raft snapshot images (one directory
	// each); Close removes it.
	dir string
}

type proposal struct {
	id    uint64
	by    uint64
	label string
	ch    <-chan apply.Result
}

// New returns a cluster of n voting members with IDs 1..n, bootstrapped as
// with --initial-cluster; nobody leads yet.
func New(n int, opts Options) (*Cluster, error) {
	if opts.ElectionTicks == 0 {
		opts.ElectionTicks = 10
	}
	if opts.MaxLearners == 0 {
		opts.MaxLearners = 1
	}
	dir, err := os.MkdirTemp("", "simcluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, Clock: clock.NewFake(), members: map[uint64]*Member{}, group: map[uint64]int{}, upSince: map[[2]uint64]time.Time{}, dir: dir}
	var peers []raft.Peer
	for id := uint64(1); id <= uint64(n); id++ {
		mb := &membership.Member{ID: id, Name: fmt.Sprintf("m%d", id), PeerURLs: []string{peerURL(id)}}
		peers = append(peers, raft.Peer{ID: id, Context: mb.Encode()})
	}
	for id := uint64(1); id <= uint64(n); id++ {
		m, err := c.open(id, nil, peers)
		if err != nil {
			return nil, err
		}
		if err := m.Members.RecordIdentity(m.eng, id, 0xc1); err != nil {
			return nil, err
		}
		c.members[id] = m
	}
	c.relink()
	return c, nil
}

func link(a, b uint64) [2]uint64 {
	if a > b {
		a, b = b, a
	}
	return [2]uint64{a, b}
}

// relink records when links came up or went down, after any change of the
// partition or of which members run.
func (c *Cluster) relink() {
	ids := c.ids()
	for i, a := range ids {
		for _, b := range ids[i+1:] {
			up := c.connected(a, b) && !c.members[a].stopped && !c.members[b].stopped
			k := link(a, b)
			if _, was := c.upSince[k]; up && !was {
				c.upSince[k] = c.Clock.Now()
			} else if !up {
				delete(c.upSince, k)
			}
		}
	}
}

// activeSince is member self's view of since when peer is reachable.
func (c *Cluster) activeSince(self, peer uint64) time.Time {
	return c.upSince[link(self, peer)]
}

func peerURL(id uint64) string { return fmt.Sprintf("http://127.0.0.1:%d", 20000+id) }

// Member returns member id, or nil.
func (c *Cluster) Member(id uint64) *Member { return c.members[id] }

func (c *Cluster) member(id uint64) (*Member, error) {
	m := c.members[id]
	if m == nil {
		return nil, fmt.Errorf("no member %d", id)
	}
	if m.stopped {
		return nil, fmt.Errorf("member %d is stopped", id)
	}
	return m, nil
}

func (c *Cluster) ids() []uint64 {
	out := make([]uint64, 0, len(c.members))
	for id := range c.members {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (c *Cluster) logf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	c.events = append(c.events, s)
	c.trace = append(c.trace, s)
}

// TakeEvents returns what happened since the last call: leader changes,
// applied proposals and their outcome, membership changes, snapshots,
// dropped messages.
func (c *Cluster) TakeEvents() []string {
	ev := c.events
	c.events = nil
	return ev
}

// Trace returns everything that happened, every message included, in
// order: two runs of the same script must give the same trace.
func (c *Cluster) Trace() []string { return slices.Clone(c.trace) }

func (c *Cluster) send(msgs []*raftpb.Message) {
	for _, m := range msgs {
		c.trace = append(c.trace, "send "+describe(m))
		c.queue = append(c.queue, m)
	}
}

func describe(m *raftpb.Message) string {
	return fmt.Sprintf("%d->%d %s term=%d index=%d logterm=%d commit=%d entries=%d reject=%v",
		m.GetFrom(), m.GetTo(), strings.TrimPrefix(m.GetType().String(), "Msg"), m.GetTerm(), m.GetIndex(),
		m.GetLogTerm(), m.GetCommit(), len(m.Entries), m.GetReject())
}

// Pending returns the messages in flight, in queue order.
func (c *Cluster) Pending() []string {
	out := make([]string, len(c.queue))
	for i, m := range c.queue {
		out[i] = describe(m)
	}
	return out
}

// Partition splits the network: messages between members of different
// groups are dropped when delivered. A member in no group is cut off from
// everyone.
func (c *Cluster) Partition(groups ...[]uint64) {
	c.group = map[uint64]int{}
	for i, g := range groups {
		for _, id := range g {
			c.group[id] = i + 1
		}
	}
	c.relink()
	c.logf("partition %v", groups)
}

// Heal joins the network again.
func (c *Cluster) Heal() {
	c.group = map[uint64]int{}
	c.relink()
	c.logf("healed")
}

func (c *Cluster) connected(a, b uint64) bool {
	if len(c.group) == 0 {
		return true
	}
	ga, gb := c.group[a], c.group[b]
	return ga != 0 && ga == gb
}

// Deliver delivers the queued messages that match (from or to 0 match
// any member), at most n of them (all when n <= 0), in queue order.
// Messages the partition or a stopped member cannot carry are dropped.
func (c *Cluster) Deliver(from, to uint64, n int) error {
	var rest []*raftpb.Message
	queue := c.queue
	c.queue = nil
	delivered := 0
	for _, m := range queue {
		if (from != 0 && m.GetFrom() != from) || (to != 0 && m.GetTo() != to) || (n > 0 && delivered == n) {
			rest = append(rest, m)
			continue
		}
		delivered++
		if err := c.deliver(m); err != nil {
			return err
		}
	}
	// Messages sent while delivering went to c.queue; the held-back ones
	// stay ahead of them.
	c.queue = append(rest, c.queue...)
	return nil
}

func (c *Cluster) deliver(msg *raftpb.Message) error {
	from, to := c.members[msg.GetFrom()], c.members[msg.GetTo()]
	if to == nil || to.stopped || from == nil || !c.connected(msg.GetFrom(), msg.GetTo()) {
		c.trace = append(c.trace, "drop "+describe(msg))
		return nil
	}
	c.trace = append(c.trace, "deliver "+describe(msg))
	if msg.GetType() == raftpb.MessageType_MsgSnap {
		return c.deliverSnapshot(from, to, msg)
	}
	if err := to.raw.Step(msg); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
		return fmt.Errorf("member %d: step %s: %w", to.ID, describe(msg), err)
	}
	return nil
}

// Drop discards the queued messages that match (0 matches any member).
func (c *Cluster) Drop(from, to uint64) {
	var rest []*raftpb.Message
	for _, m := range c.queue {
		if (from == 0 || m.GetFrom() == from) && (to == 0 || m.GetTo() == to) {
			c.trace = append(c.trace, "drop "+describe(m))
			continue
		}
		rest = append(rest, m)
	}
	c.queue = rest
}

// Reorder shuffles the queued messages with a seeded source: the same seed
// gives the same order.
func (c *Cluster) Reorder(seed int64) {
	r := rand.New(rand.NewSource(seed))
	r.Shuffle(len(c.queue), func(i, j int) { c.queue[i], c.queue[j] = c.queue[j], c.queue[i] })
	c.trace = append(c.trace, fmt.Sprintf("reorder seed=%d", seed))
}

// Process handles every member's Ready once, in member-ID order, and
// reports whether any member had one.
func (c *Cluster) Process() (bool, error) {
	any := false
	for _, id := range c.ids() {
		did, err := c.members[id].handleReady()
		if err != nil {
			return any, err
		}
		any = any || did
	}
	c.collect()
	return any, nil
}

// Stabilize processes Readies and delivers messages until nothing is left
// to do.
func (c *Cluster) Stabilize() error {
	for range 10000 {
		did, err := c.Process()
		if err != nil {
			return err
		}
		if len(c.queue) == 0 && !did {
			return nil
		}
		if err := c.Deliver(0, 0, 0); err != nil {
			return err
		}
	}
	return errors.New("simcluster: no quiescence after 10000 rounds")
}

// Tick advances member id's raft clock by n ticks; messages it sends stay
// queued.
func (c *Cluster) Tick(id uint64, n int) error {
	m, err := c.member(id)
	if err != nil {
		return err
	}
	for range n {
		m.raw.Tick()
	}
	return nil
}

// TickElection ticks member id until its election timeout passes and it
// campaigns, and not once more. Raft randomises that timeout (within one
// to two election timeouts) from a source nobody can seed; stopping at
// the campaign leaves the member in the same state whatever it drew, and a
// follower's ticks send nothing, so nothing of the draw shows.
func (c *Cluster) TickElection(id uint64) error {
	m, err := c.member(id)
	if err != nil {
		return err
	}
	for range 2 * c.opts.ElectionTicks {
		m.raw.Tick()
		if st := m.raw.BasicStatus().RaftState; st != raft.StateFollower {
			return nil
		}
	}
	return fmt.Errorf("member %d did not campaign within %d ticks", id, 2*c.opts.ElectionTicks)
}

// ForgetLeader makes follower id forget its leader without campaigning,
// so that it grants a pre-vote at once; otherwise, with PreVote and
// CheckQuorum, it refuses one for an election timeout after it last heard
// from the leader, and only ticking it (whose outcome raft randomises)
// would get it there.
func (c *Cluster) ForgetLeader(id uint64) error {
	m, err := c.member(id)
	if err != nil {
		return err
	}
	return m.raw.ForgetLeader()
}

// Campaign makes member id start an election.
func (c *Cluster) Campaign(id uint64) error {
	m, err := c.member(id)
	if err != nil {
		return err
	}
	return m.raw.Campaign()
}

// Propose proposes r on member id; its outcome is reported when member id
// applies it. label names it in the events.
func (c *Cluster) Propose(id uint64, label string, r *pb.InternalRaftRequest) error {
	return c.propose(id, label, func(m *Member, reqID uint64) error {
		r.Header = &pb.RequestHeader{ID: reqID}
		data, err := proto.Marshal(r)
		if err != nil {
			return err
		}
		return m.raw.Propose(data)
	})
}

// ProposeConfChange proposes cc on member id, like reconfig.Reconfigurer
// once its policy let the change through.
func (c *Cluster) ProposeConfChange(id uint64, label string, cc *raftpb.ConfChange) error {
	return c.propose(id, label, func(m *Member, reqID uint64) error {
		cc.Id = proto.Uint64(reqID)
		return m.raw.ProposeConfChange(cc)
	})
}

// propose registers a waiter for a new request ID on member id and hands
// the proposal to raft; raft's refusal is an event, not an error.
func (c *Cluster) propose(id uint64, label string, send func(m *Member, reqID uint64) error) error {
	m, err := c.member(id)
	if err != nil {
		return err
	}
	c.nextReq++
	p := &proposal{id: c.nextReq, by: id, label: label, ch: m.wait.Register(c.nextReq)}
	if err := send(m, p.id); err != nil {
		m.wait.Cancel(p.id)
		c.logf("%d: %s refused: %v", id, label, err)
		return nil
	}
	c.pending = append(c.pending, p)
	return nil
}

// MemberAdd runs internal/member/reconfig's policy for adding member nid
// on member id and, if it passes, proposes the change there, as
// reconfig.Reconfigurer.AddMember does (which names the member itself).
// The new member gets the peer URL of member urlOf (its own when 0), as
// when a removed member's address is added back under a new ID.
func (c *Cluster) MemberAdd(id, nid, urlOf uint64, learner bool) error {
	m, err := c.member(id)
	if err != nil {
		return err
	}
	label := fmt.Sprintf("member-add %d%s", nid, learnerTag(learner))
	if err := m.policy.CheckAdd(learner); err != nil {
		c.logf("%d: %s refused: %v", id, label, err)
		return nil
	}
	if urlOf == 0 {
		urlOf = nid
	}
	mb := membership.Member{ID: nid, PeerURLs: []string{peerURL(urlOf)}, IsLearner: learner}
	typ := raftpb.ConfChangeType_ConfChangeAddNode
	if learner {
		typ = raftpb.ConfChangeType_ConfChangeAddLearnerNode
	}
	return c.ProposeConfChange(id, label, &raftpb.ConfChange{
		Type: typ.Enum(), NodeId: proto.Uint64(nid), Context: (&membership.ConfChangeContext{Member: mb}).Encode()})
}

// Publish replicates member id's name and client URL through id, as
// internal/member/bootstrap.Publish does once a member serves.
func (c *Cluster) Publish(id uint64, name string) error {
	return c.Propose(id, fmt.Sprintf("publish %d", id), &pb.InternalRaftRequest{
		ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
			Member_ID:        id,
			MemberAttributes: &membershippb.Attributes{Name: name, ClientUrls: []string{fmt.Sprintf("http://127.0.0.1:%d", 30000+id)}},
		}})
}

// MemberRemove is MemberAdd's twin for removing member target.
func (c *Cluster) MemberRemove(id, target uint64) error {
	m, err := c.member(id)
	if err != nil {
		return err
	}
	label := fmt.Sprintf("member-remove %d", target)
	if err := m.policy.CheckRemove(target); err != nil {
		c.logf("%d: %s refused: %v", id, label, err)
		return nil
	}
	return c.ProposeConfChange(id, label, &raftpb.ConfChange{
		Type: raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(target)})
}

// MemberPromote promotes learner target through member id. Only the leader
// can judge a learner's progress, so a follower forwards the promotion to
// it, as reconfig.Reconfigurer.PromoteMember does over the peer listener.
func (c *Cluster) MemberPromote(id, target uint64) error {
	m, err := c.member(id)
	if err != nil {
		return err
	}
	label := fmt.Sprintf("member-promote %d", target)
	err = m.policy.CheckPromote(context.Background(), target)
	if errors.Is(err, membership.ErrNotLeader) && m.lead != 0 && m.lead != id {
		c.logf("%d: %s forwarded to the leader %d", id, label, m.lead)
		if m, err = c.member(m.lead); err != nil {
			return err
		}
		err = m.policy.CheckPromote(context.Background(), target)
	}
	if err != nil {
		c.logf("%d: %s refused: %v", m.ID, label, err)
		return nil
	}
	return c.ProposeConfChange(m.ID, label, &raftpb.ConfChange{
		Type: raftpb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: proto.Uint64(target),
		Context: (&membership.ConfChangeContext{Member: membership.Member{ID: target}, IsPromote: true}).Encode()})
}

// collect reports the proposals whose outcome arrived. The applier
// triggers waiters synchronously inside handleReady, so this sees every
// outcome of the Readies just processed.
func (c *Cluster) collect() {
	var rest []*proposal
	for _, p := range c.pending {
		select {
		case res := <-p.ch:
			c.logf("%d: %s -> %s", p.by, p.label, outcome(res))
		default:
			rest = append(rest, p)
		}
	}
	c.pending = rest
}

// Unfinished lists the proposals whose outcome has not arrived.
func (c *Cluster) Unfinished() []string {
	var out []string
	for _, p := range c.pending {
		out = append(out, fmt.Sprintf("%d: %s", p.by, p.label))
	}
	return out
}

func outcome(res apply.Result) string {
	if res.Err != nil {
		return "error: " + res.Err.Error()
	}
	switch r := res.Resp.(type) {
	case *pb.PutResponse:
		return fmt.Sprintf("ok rev=%d", r.GetHeader().GetRevision())
	case *pb.LeaseGrantResponse:
		return fmt.Sprintf("ok lease=%d ttl=%d", r.ID, r.TTL)
	case nil:
		return "ok"
	default:
		return "ok"
	}
}

// AddMember starts a new, empty member id (as with
// --initial-cluster-state=existing once MemberAdd committed it): raft
// starts with no peers and the leader brings it the log or a snapshot.
func (c *Cluster) AddMember(id uint64) error {
	if c.members[id] != nil {
		return fmt.Errorf("member %d exists", id)
	}
	m, err := c.open(id, nil, nil)
	if err != nil {
		return err
	}
	if err := m.Members.RecordIdentity(m.eng, id, 0xc1); err != nil {
		return err
	}
	c.members[id] = m
	c.relink()
	return nil
}

// Stop stops member id (its state is kept, as on disk); messages to it are
// dropped.
func (c *Cluster) Stop(id uint64) error {
	m, err := c.member(id)
	if err != nil {
		return err
	}
	m.stopped = true
	c.relink()
	c.logf("%d: stopped", id)
	return nil
}

// Restart reopens stopped member id from its engine, optionally with
// --force-new-cluster (internal/member/bootstrap.ForceNewCluster).
func (c *Cluster) Restart(id uint64, forceNewCluster bool) error {
	old := c.members[id]
	if old == nil || !old.stopped {
		return fmt.Errorf("member %d is not stopped", id)
	}
	old.hub.Close()
	old.Store.Close()
	if forceNewCluster {
		if err := bootstrap.ForceNewCluster(old.eng, "sim", nil); err != nil {
			return err
		}
	}
	m, err := c.open(id, old.eng, nil)
	if err != nil {
		return err
	}
	c.members[id] = m
	c.relink()
	c.logf("%d: restarted%s", id, map[bool]string{true: " with --force-new-cluster"}[forceNewCluster])
	return nil
}

// Close releases every member.
func (c *Cluster) Close() {
	defer os.RemoveAll(c.dir)
	for _, m := range c.members {
		m.hub.Close()
		m.Store.Close()
	}
}
