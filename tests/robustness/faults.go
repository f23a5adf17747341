package robustness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/metastore/metastore/tests/framework"
)

// Fault is one kind of failure injected into a running cluster while
// traffic flows. Inject runs on the test goroutine, returns once the
// cluster was given back its health (process restarted, proxy healed) and
// says what it did. rnd is the scenario's seeded source: every random
// choice (which member, how long) comes from it.
type Fault interface {
	Name() string
	// Available says whether the fault makes sense for the cluster (a
	// follower fault needs followers).
	Available(cfg ClusterConfig) bool
	Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error)
}

// Faults lists every fault kind, by name: the process, network and
// operation faults, then the failpoint and disk faults
// (faults_failpoint.go).
var Faults = append(baseFaults, failpointFaults...)

// baseFaults need no failpoints in the binary.
var baseFaults = []Fault{
	killFault{leader: true},
	killFault{leader: false},
	sigstopLeader{},
	restartFault{},
	networkFault{kind: "blackhole", both: true},
	networkFault{kind: "blackhole", both: false},
	networkFault{kind: "delay", both: true},
	networkFault{kind: "delay", both: false},
	networkFault{kind: "drop", both: true},
	networkFault{kind: "drop", both: false},
	moveLeader{},
	replaceMember{},
	defragFault{},
	snapshotCatchup{},
	leaderChurn{},
}

// failpointFaults need the binary built with -tags failpoints.
var failpointFaults = []Fault{
	fpPanicRaft,
	fpPanicApply,
	fpPanicCompact,
	fpPanicSnapshot,
	fpPanicConfChange,
	fpPanicWatch,
	fpSlowWatch,
	diskSlowRaft,
	diskSlowCommit,
}

// FaultByName finds a fault kind.
func FaultByName(name string) (Fault, bool) {
	for _, f := range Faults {
		if f.Name() == name {
			return f, true
		}
	}
	return nil, false
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func between(rnd *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rnd.Int64N(int64(hi-lo)+1))
}

// victim picks the leader or a follower.
func victim(ctx context.Context, c *Cluster, rnd *rand.Rand, leader bool) (*framework.Member, error) {
	if leader {
		return c.Leader(ctx)
	}
	return c.Follower(ctx, rnd.IntN)
}

// killFault: kill -9 of the leader or a follower, then start it again.
type killFault struct{ leader bool }

func (f killFault) Name() string {
	if f.leader {
		return "kill-leader"
	}
	return "kill-follower"
}
func (f killFault) Available(cfg ClusterConfig) bool { return f.leader || cfg.Size > 1 }
func (f killFault) Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error) {
	m, err := victim(ctx, c, rnd, f.leader)
	if err != nil {
		return "", err
	}
	m.Kill9()
	down := between(rnd, 0, 1500*time.Millisecond)
	if err := pause(ctx, down); err != nil {
		return "", err
	}
	m.StartAgain()
	return fmt.Sprintf("kill -9 %s, down %v", m.Name, down.Round(time.Millisecond)), nil
}

// sigstopLeader freezes the leader (SIGSTOP) long enough for the others to
// elect a new one, then lets it go on believing it leads (SIGCONT).
type sigstopLeader struct{}

func (sigstopLeader) Name() string { return "sigstop-leader" }

// Available: the fault is about a deposed leader that wakes up, so it needs
// others to elect a new one.
func (sigstopLeader) Available(cfg ClusterConfig) bool { return cfg.Size > 1 }
func (sigstopLeader) Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error) {
	m, err := c.Leader(ctx)
	if err != nil {
		return "", err
	}
	pid := m.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return "", fmt.Errorf("SIGSTOP %s: %w", m.Name, err)
	}
	stopped := between(rnd, time.Duration(c.cfg.ElectionMillis)*time.Millisecond, time.Duration(3*c.cfg.ElectionMillis)*time.Millisecond+time.Second)
	perr := pause(ctx, stopped)
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		return "", fmt.Errorf("SIGCONT %s: %w", m.Name, err)
	}
	if perr != nil {
		return "", perr
	}
	return fmt.Sprintf("SIGSTOP %s for %v", m.Name, stopped.Round(time.Millisecond)), nil
}

// restartFault: graceful stop (SIGTERM) and start of a random member.
type restartFault struct{}

func (restartFault) Name() string                 { return "restart" }
func (restartFault) Available(ClusterConfig) bool { return true }
func (restartFault) Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error) {
	m := c.Members[rnd.IntN(len(c.Members))]
	m.Restart()
	return "graceful restart of " + m.Name, nil
}

// networkFault disturbs the peer path of one member through the proxies:
// what it receives only, or what it receives and what it sends.
type networkFault struct {
	kind string // blackhole, delay, drop
	both bool
}

func (f networkFault) Name() string {
	dir := "in"
	if f.both {
		dir = "both"
	}
	return "net-" + f.kind + "-" + dir
}
func (f networkFault) Available(cfg ClusterConfig) bool { return cfg.Size > 1 }
func (f networkFault) Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error) {
	leader := rnd.IntN(2) == 0
	m, err := victim(ctx, c, rnd, leader)
	if err != nil {
		return "", err
	}
	id, err := c.MemberID(ctx, m)
	if err != nil {
		return "", err
	}
	var lf framework.LinkFault
	switch f.kind {
	case "blackhole":
		lf.Blackhole = true
	case "delay":
		lf.Delay = between(rnd, 50*time.Millisecond, 400*time.Millisecond)
		lf.Jitter = lf.Delay / 4
	case "drop":
		lf.DropRate = 0.05 + rnd.Float64()*0.45
	}
	m.Proxy.SetIncoming(lf)
	if f.both {
		for _, o := range c.Members {
			if o != m {
				o.Proxy.SetFrom(strconv.FormatUint(id, 16), lf)
			}
		}
	}
	d := between(rnd, time.Second, 3*time.Second)
	perr := pause(ctx, d)
	for _, o := range c.Members {
		o.Proxy.Heal()
	}
	if perr != nil {
		return "", perr
	}
	role := "follower"
	if leader {
		role = "leader"
	}
	return fmt.Sprintf("%s %s (%s) %+v for %v", f.Name(), m.Name, role, lf, d.Round(time.Millisecond)), nil
}

// moveLeader transfers leadership to a random follower, a few times.
type moveLeader struct{}

func (moveLeader) Name() string                     { return "move-leader" }
func (moveLeader) Available(cfg ClusterConfig) bool { return cfg.Size > 1 }
func (moveLeader) Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error) {
	var did []string
	for range 1 + rnd.IntN(3) {
		l, err := c.Leader(ctx)
		if err != nil {
			return "", err
		}
		to, err := c.Follower(ctx, rnd.IntN)
		if err != nil {
			return "", err
		}
		toID, err := c.MemberID(ctx, to)
		if err != nil {
			return "", err
		}
		cl, err := c.client(l.ClientURL)
		if err != nil {
			return "", err
		}
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = cl.MoveLeader(mctx, toID)
		cancel()
		cl.Close()
		if err != nil {
			return "", fmt.Errorf("move leader %s -> %s: %w", l.Name, to.Name, err)
		}
		did = append(did, l.Name+"->"+to.Name)
		if err := pause(ctx, between(rnd, 200*time.Millisecond, time.Second)); err != nil {
			return "", err
		}
	}
	return "move leader " + strings.Join(did, ", "), nil
}

// replaceMember removes a member (leader or follower) and adds a new one
// with an empty data dir in its place, under load.
type replaceMember struct{}

func (replaceMember) Name() string                     { return "replace-member" }
func (replaceMember) Available(cfg ClusterConfig) bool { return cfg.Size > 1 }
func (replaceMember) Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error) {
	m := c.replaceVictim
	if m == nil {
		return "", fmt.Errorf("no member chosen for replacement")
	}
	id, err := c.MemberID(ctx, m)
	if err != nil {
		return "", err
	}
	rest := c.others(m)
	cl, err := c.client(rest[0].ClientURL)
	if err != nil {
		return "", err
	}
	defer cl.Close()
	if err := retry(ctx, 30*time.Second, func(ctx context.Context) error {
		_, err := cl.MemberRemove(ctx, id)
		if err != nil && strings.Contains(err.Error(), "member not found") {
			return nil // an earlier attempt went through
		}
		return err
	}); err != nil {
		return "", fmt.Errorf("remove %s: %w", m.Name, err)
	}
	m.Kill9()
	c.Members = rest
	name := fmt.Sprintf("m%d", c.nextName)
	c.nextName++
	nm := framework.NewMember(c.t, c.cfg.memberOptions(c.t, name))
	if err := pause(ctx, between(rnd, 0, time.Second)); err != nil {
		return "", err
	}
	if err := retry(ctx, 30*time.Second, func(ctx context.Context) error {
		_, err := cl.MemberAdd(ctx, []string{nm.PeerURL})
		if err != nil && strings.Contains(err.Error(), "Peer URLs already exists") {
			return nil
		}
		return err
	}); err != nil {
		return "", fmt.Errorf("add %s: %w", name, err)
	}
	if err := nm.Join(rest); err != nil {
		return "", fmt.Errorf("start %s: %w", name, err)
	}
	c.Members = append(c.Members, nm)
	c.Every = append(c.Every, nm)
	return fmt.Sprintf("replaced %s with %s", m.Name, name), nil
}

func retry(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := f(rctx)
		cancel()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		if err := pause(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// defragFault defragments members while the traffic compacts and watches.
type defragFault struct{}

func (defragFault) Name() string                 { return "defrag-compact" }
func (defragFault) Available(ClusterConfig) bool { return true }
func (defragFault) Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error) {
	n := 2 + rnd.IntN(4)
	for range n {
		m := c.Members[rnd.IntN(len(c.Members))]
		cl, err := c.client(m.ClientURL)
		if err != nil {
			return "", err
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = cl.Defragment(dctx, m.ClientURL)
		cancel()
		cl.Close()
		if err != nil {
			return "", fmt.Errorf("defragment %s: %w", m.Name, err)
		}
		if err := pause(ctx, between(rnd, 100*time.Millisecond, 500*time.Millisecond)); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d defragmentations during compaction traffic", n), nil
}

// snapshotCatchup cuts a follower off long enough for the leader to trim
// its log (the scenario runs it with a small --snapshot-count), so that it
// catches up from a snapshot when the link is back.
type snapshotCatchup struct{}

func (snapshotCatchup) Name() string                     { return "snapshot-catchup" }
func (snapshotCatchup) Available(cfg ClusterConfig) bool { return cfg.Size > 1 }
func (snapshotCatchup) Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error) {
	m, err := c.Follower(ctx, rnd.IntN)
	if err != nil {
		return "", err
	}
	before := snapshotsInstalled(m)
	lagged, err := cutOffUntilTrimmed(ctx, c, rnd, m)
	m.Proxy.Heal()
	if err != nil {
		return "", err
	}
	// The catch-up is what this fault is for: wait for it.
	err = framework.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		return snapshotsInstalled(m) > before, nil
	})
	if err != nil {
		return "", fmt.Errorf("%s did not install a snapshot after its link came back", m.Name)
	}
	return fmt.Sprintf("follower %s cut off (%s), caught up by snapshot", m.Name, lagged), nil
}

// cutOffUntilTrimmed blackholes what follower m receives for 1-2 s and then
// until the leader is surely past a log compaction above m's last index,
// whatever the traffic's rate, so that m can only catch up by snapshot. It
// leaves the link cut: the caller heals it (also on error). It returns
// where leader and follower stood.
func cutOffUntilTrimmed(ctx context.Context, c *Cluster, rnd *rand.Rand, m *framework.Member) (string, error) {
	m.Proxy.SetIncoming(framework.LinkFault{Blackhole: true})
	if err := pause(ctx, between(rnd, time.Second, 2*time.Second)); err != nil {
		return "", err
	}
	// The leader cuts its log to applied-catchup every snapshot-count
	// entries, so twice snapshot-count plus catchup entries ahead is enough.
	gap := uint64(2*c.cfg.SnapshotCount + c.cfg.CatchupEntries + 10)
	var lagged string
	err := framework.WaitFor(60*time.Second, 100*time.Millisecond, func() (bool, error) {
		l, err := c.Leader(ctx)
		if err != nil {
			return false, err
		}
		ls, lerr := c.status(ctx, l)
		fs, ferr := c.status(ctx, m)
		if lerr != nil || ferr != nil {
			return false, nil
		}
		lagged = fmt.Sprintf("leader %s at raft index %d, follower at %d", l.Name, ls.RaftIndex, fs.RaftIndex)
		return ls.RaftIndex > fs.RaftIndex+gap, nil
	})
	if err != nil {
		return "", fmt.Errorf("waiting for the leader to get %d entries ahead of %s (%s): %w", gap, m.Name, lagged, err)
	}
	return lagged, nil
}

// snapshotInstalledLine is what a member logs when it installs a leader's
// snapshot (server/snapshots.go).
const snapshotInstalledLine = "installing a snapshot"

// snapshotsInstalled counts the snapshot installations m logged.
func snapshotsInstalled(m *framework.Member) int {
	return strings.Count(m.Logs(), snapshotInstalledLine)
}

// leaderChurn forces several leader changes (kill -9 or SIGSTOP of the
// leader) while the lease-heavy traffic grants, attaches and revokes.
type leaderChurn struct{}

func (leaderChurn) Name() string                 { return "lease-leader-churn" }
func (leaderChurn) Available(ClusterConfig) bool { return true }
func (leaderChurn) Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error) {
	var did []string
	for range 2 + rnd.IntN(2) {
		var f Fault = killFault{leader: true}
		if rnd.IntN(2) == 0 {
			f = sigstopLeader{}
		}
		s, err := f.Inject(ctx, c, rnd)
		if err != nil {
			return "", err
		}
		did = append(did, s)
		if err := c.WaitHealthy(ctx, 30*time.Second); err != nil {
			return "", err
		}
	}
	return strings.Join(did, "; "), nil
}
