package simcluster

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"

	"github.com/metastore/metastore/internal/member/leadership"
	"github.com/metastore/metastore/internal/member/status"
	"github.com/metastore/metastore/internal/mvcc"
)

// Command is one script command: its name, key=value arguments (a bare
// word is a key with an empty value) and input lines.
type Command struct {
	Name  string
	Args  map[string]string
	Input []string
}

func (cmd Command) uint(key string, def uint64) (uint64, error) {
	v, ok := cmd.Args[key]
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %w", key, v, err)
	}
	return n, nil
}

func (cmd Command) has(key string) bool { _, ok := cmd.Args[key]; return ok }

// Run runs one command and returns what it prints. The cluster is created
// by the first command, start.
//
//	start n=3 [snapshot-count=N catchup=M max-learners=K strict=false]
//	campaign id=1                 start an election on 1
//	tick id=1 [n=1]               raft ticks on 1 (heartbeats on a leader)
//	tick-election id=2            ticks past 2's election timeout, once
//	forget-leader id=3            3 forgets its leader (grants pre-votes)
//	process                       every member handles its Ready once
//	deliver [from=1] [to=2] [n=]  deliver queued messages in order
//	drop [from=] [to=]            discard queued messages
//	reorder seed=7                shuffle the queue, seeded
//	pending                       list the queued messages
//	stabilize                     process and deliver until quiet
//	partition                     input: one group of member IDs a line
//	heal
//	put id=1 k=a v=b [lease=5]    propose a Put on 1
//	get id=2 k=a                  serializable read of 2's local state
//	read-index id=2 ctx=r1        ask raft for a read index on 2
//	member-add id=1 new=4 [learner]   reconfig's policy on 1, then propose
//	member-promote id=1 target=4      (a follower forwards to the leader)
//	member-remove id=1 target=3
//	start-member id=4             start added member 4, empty
//	stop id=3 / restart id=3 [force-new-cluster]
//	lease-grant id=1 lease=5 ttl=10
//	keepalive id=1 lease=5        renew on 1's lessor (the leader's)
//	advance d=11s                 move the lessors' clock
//	expire-leases id=1            1 proposes revoking its expired leases
//	leases id=2                   the leases 2 knows
//	status                        raft and apply state of every member
//	transferee id=1               whom leader 1 would hand leadership to
//	alarm id=1 member=2 [deactivate]  propose a NOSPACE alarm for member 2
//	member-status id=2            2's Maintenance Status (internal/member/status)
//	transfer-leader id=1 target=2 1 asks raft to hand leadership to 2
//	unfinished                    proposals whose outcome did not arrive
func (c *Cluster) Run(cmd Command) (string, error) {
	id, err := cmd.uint("id", 0)
	if err != nil {
		return "", err
	}
	switch cmd.Name {
	case "campaign":
		err = c.Campaign(id)
	case "tick":
		n, _ := cmd.uint("n", 1)
		err = c.Tick(id, int(n))
	case "tick-election":
		err = c.TickElection(id)
	case "forget-leader":
		err = c.ForgetLeader(id)
	case "process":
		_, err = c.Process()
	case "deliver":
		from, _ := cmd.uint("from", 0)
		to, _ := cmd.uint("to", 0)
		n, _ := cmd.uint("n", 0)
		err = c.Deliver(from, to, int(n))
		c.collect()
	case "drop":
		from, _ := cmd.uint("from", 0)
		to, _ := cmd.uint("to", 0)
		c.Drop(from, to)
	case "reorder":
		seed, _ := cmd.uint("seed", 0)
		c.Reorder(int64(seed))
	case "pending":
		return lines(c.Pending()), nil
	case "stabilize":
		err = c.Stabilize()
	case "partition":
		var groups [][]uint64
		for _, l := range cmd.Input {
			var g []uint64
			for _, f := range strings.Fields(l) {
				n, perr := strconv.ParseUint(f, 10, 64)
				if perr != nil {
					return "", perr
				}
				g = append(g, n)
			}
			groups = append(groups, g)
		}
		c.Partition(groups...)
	case "heal":
		c.Heal()
	case "put":
		lease, _ := cmd.uint("lease", 0)
		err = c.Propose(id, fmt.Sprintf("put %s=%s", cmd.Args["k"], cmd.Args["v"]), &pb.InternalRaftRequest{
			Put: &pb.PutRequest{Key: []byte(cmd.Args["k"]), Value: []byte(cmd.Args["v"]), Lease: int64(lease)}})
	case "get":
		return c.get(id, cmd.Args["k"])
	case "read-index":
		var m *Member
		if m, err = c.member(id); err == nil {
			m.raw.ReadIndex([]byte(cmd.Args["ctx"]))
		}
	case "member-add":
		nid, _ := cmd.uint("new", 0)
		urlOf, _ := cmd.uint("url-of", 0)
		err = c.MemberAdd(id, nid, urlOf, cmd.has("learner"))
	case "publish":
		name := cmd.Args["name"]
		if name == "" {
			name = fmt.Sprintf("m%d", id)
		}
		err = c.Publish(id, name)
	case "member-promote":
		t, _ := cmd.uint("target", 0)
		err = c.MemberPromote(id, t)
	case "member-remove":
		t, _ := cmd.uint("target", 0)
		err = c.MemberRemove(id, t)
	case "start-member":
		err = c.AddMember(id)
	case "stop":
		err = c.Stop(id)
	case "restart":
		err = c.Restart(id, cmd.has("force-new-cluster"))
	case "lease-grant":
		l, _ := cmd.uint("lease", 0)
		ttl, _ := cmd.uint("ttl", 0)
		err = c.Propose(id, fmt.Sprintf("lease-grant %d", l), &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: int64(l), TTL: int64(ttl)}})
	case "keepalive":
		return c.keepAlive(id, cmd)
	case "advance":
		d, perr := time.ParseDuration(cmd.Args["d"])
		if perr != nil {
			return "", perr
		}
		c.Clock.Advance(d)
	case "expire-leases":
		var m *Member
		if m, err = c.member(id); err == nil {
			for _, l := range m.Lessor.Expired(100) {
				if err = c.Propose(id, fmt.Sprintf("lease-revoke %d", l), &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: l}}); err != nil {
					break
				}
			}
		}
	case "leases":
		return c.leases(id)
	case "status":
		return c.status(), nil
	case "transferee":
		return c.transferee(id)
	case "alarm":
		mid, _ := cmd.uint("member", 0)
		act, verb := pb.AlarmRequest_ACTIVATE, "activate"
		if cmd.has("deactivate") {
			act, verb = pb.AlarmRequest_DEACTIVATE, "deactivate"
		}
		err = c.Propose(id, fmt.Sprintf("alarm %s NOSPACE %d", verb, mid), &pb.InternalRaftRequest{
			Alarm: &pb.AlarmRequest{Action: act, MemberID: mid, Alarm: pb.AlarmType_NOSPACE}})
	case "member-status":
		return c.memberStatus(id)
	case "transfer-leader":
		var m *Member
		t, _ := cmd.uint("target", 0)
		if m, err = c.member(id); err == nil {
			m.raw.TransferLeader(t)
		}
	case "members":
		return c.memberLists(), nil
	case "unfinished":
		return lines(c.Unfinished()), nil
	default:
		return "", fmt.Errorf("unknown command %q", cmd.Name)
	}
	if err != nil {
		return "", err
	}
	return lines(c.TakeEvents()), nil
}

func lines(ls []string) string {
	if len(ls) == 0 {
		return "ok"
	}
	return strings.Join(ls, "\n")
}

func (c *Cluster) get(id uint64, key string) (string, error) {
	m := c.members[id]
	if m == nil {
		return "", fmt.Errorf("no member %d", id)
	}
	res, err := m.Store.Range(context.Background(), []byte(key), nil, mvcc.RangeOptions{})
	if err != nil {
		return "error: " + err.Error(), nil
	}
	if len(res.KVs) == 0 {
		return fmt.Sprintf("%s not found (rev %d)", key, m.Store.Rev()), nil
	}
	kv := res.KVs[0]
	return fmt.Sprintf("%s=%s mod=%d lease=%d (rev %d)", kv.Key, kv.Value, kv.ModRevision, kv.Lease, m.Store.Rev()), nil
}

func (c *Cluster) keepAlive(id uint64, cmd Command) (string, error) {
	m, err := c.member(id)
	if err != nil {
		return "", err
	}
	l, _ := cmd.uint("lease", 0)
	ctx, cancel := expiredCtx()
	defer cancel()
	ttl, err := m.Lessor.Renew(ctx, int64(l))
	if err != nil {
		return "error: " + err.Error(), nil
	}
	return fmt.Sprintf("ttl=%d", ttl), nil
}

func (c *Cluster) leases(id uint64) (string, error) {
	m := c.members[id]
	if m == nil {
		return "", fmt.Errorf("no member %d", id)
	}
	var out []string
	for _, l := range m.Lessor.Leases() {
		out = append(out, fmt.Sprintf("lease %d ttl=%d", l.ID, l.TTL()))
	}
	if len(out) == 0 {
		return "no leases", nil
	}
	return lines(out), nil
}

// memberLists shows, for every running member, its member list (ID, name,
// peer URL, learner flag) and raft's configuration, then whether they all
// agree: a member list or voter set that differs between members is a
// divergence.
func (c *Cluster) memberLists() string {
	var out []string
	diverged := false
	for _, id := range c.ids() {
		m := c.members[id]
		if m.stopped {
			continue
		}
		var ms []string
		for _, mb := range m.Members.Members() {
			s := fmt.Sprintf("%d:%s@%s", mb.ID, mb.Name, strings.Join(mb.PeerURLs, ","))
			if mb.IsLearner {
				s += "(learner)"
			}
			ms = append(ms, s)
		}
		cfg := m.raw.Status().Config
		state := fmt.Sprintf("members=[%s] voters=%v learners=%v", strings.Join(ms, " "),
			sortedIDs(cfg.Voters.IDs()), sortedIDs(cfg.Learners))
		if len(out) > 0 && !strings.HasSuffix(out[0], " "+state) {
			diverged = true
		}
		out = append(out, fmt.Sprintf("%d: %s", id, state))
	}
	if diverged {
		return lines(append(out, "DIVERGED: the members disagree"))
	}
	return lines(append(out, "all members agree"))
}

func sortedIDs(set map[uint64]struct{}) []uint64 {
	ids := make([]uint64, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// transferee is the hand-off a leader makes when it stops gracefully
// (internal/member/leadership), from its raft status and the links up now.
func (c *Cluster) transferee(id uint64) (string, error) {
	m, err := c.member(id)
	if err != nil {
		return "", err
	}
	if m.state != raft.StateLeader {
		return fmt.Sprintf("%d does not lead: no hand-off", id), nil
	}
	t, ok := leadership.Transferee(m.raw.Status(), id, func(peer uint64) bool { return !c.activeSince(id, peer).IsZero() })
	if !ok {
		return "no voting follower to hand leadership to", nil
	}
	return fmt.Sprintf("transferee %d", t), nil
}

// memberStatus is what Maintenance Status answers on member id, built by
// internal/member/status from the member's own components (sizes left
// out: they depend on the engine's accounting, not on the cluster).
func (c *Cluster) memberStatus(id uint64) (string, error) {
	m, err := c.member(id)
	if err != nil {
		return "", err
	}
	_, _, r := status.New(status.Config{Self: id, Raft: simRaft{m}, Members: m.Members, Store: m.Store,
		Alarms: m.alarms, Engine: m.eng, RaftLog: m.raftLog, Applier: m.applier})
	st, err := r.Status(context.Background())
	if err != nil {
		return "", err
	}
	out := fmt.Sprintf("leader=%d term=%d raft-index=%d applied=%d learner=%v", st.Leader, st.RaftTerm,
		st.RaftIndex, st.RaftAppliedIndex, st.IsLearner)
	for _, e := range st.Errors {
		out += "\nerror: " + e
	}
	return out, nil
}

// simRaft is a member's raft as internal/member/status reads it.
type simRaft struct{ m *Member }

func (r simRaft) Leader() uint64 { return r.m.lead }
func (r simRaft) Term() uint64   { return r.m.raw.BasicStatus().GetTerm() }

func (c *Cluster) status() string {
	var out []string
	for _, id := range c.ids() {
		m := c.members[id]
		if m.stopped {
			out = append(out, fmt.Sprintf("%d: stopped", id))
			continue
		}
		st := m.raw.BasicStatus()
		out = append(out, fmt.Sprintf("%d: %s term=%d lead=%d commit=%d applied=%d rev=%d members=%s",
			id, strings.TrimPrefix(st.RaftState.String(), "State"), st.GetTerm(), st.Lead, st.GetCommit(),
			m.applier.AppliedIndex(), m.Store.Rev(), memberList(m.Members.Members())))
	}
	return lines(out)
}
