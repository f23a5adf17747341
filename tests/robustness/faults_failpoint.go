package robustness

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/tests/v3/robustness/traffic"

	"github.com/metastore/metastore/internal/failpoint"
	"github.com/metastore/metastore/tests/framework"
)

// The failpoint fault kinds: a member is stopped (panic) or slowed down
// (sleep) at one of internal/failpoint's marked steps over gofail's HTTP
// endpoint, the step is made to run, and the member is started again. The
// binary must be built with -tags failpoints (cluster.go builds it, or
// campaign.sh passes it in METASTORE_E2E_SERVER_BIN).

// role says which member a failpoint can fire on.
type role int

const (
	anyRole role = iota
	leaderRole
	followerRole
)

// point is a failpoint and the member role it fires on.
type point struct {
	name string
	role role
}

// configurer is a fault kind that shapes its scenario: cluster flags or
// traffic that make its failpoints run.
type configurer interface {
	configure(s *Scenario)
}

// fpPanic sets one failpoint of its group to panic on one member, makes the
// step run, waits for the member to die of that panic (its log must name
// the failpoint, internal/failpoint.PanicMessage), and starts it again.
type fpPanic struct {
	group  string
	points []point
}

var (
	fpPanicRaft = fpPanic{group: "raft", points: []point{
		{failpoint.RaftBeforeLeaderSend, leaderRole}, {failpoint.RaftBeforeSave, anyRole}, {failpoint.RaftAfterSave, anyRole},
		{failpoint.RaftBeforeFollowerSend, followerRole}, {failpoint.RaftBeforeAdvance, anyRole},
	}}
	fpPanicApply = fpPanic{group: "apply", points: []point{
		{failpoint.BeforeApplyOneEntryNormal, anyRole}, {failpoint.BeforeCommit, anyRole}, {failpoint.AfterCommit, anyRole},
		{failpoint.RaftBeforeCompactLog, anyRole}, {failpoint.RaftAfterCompactLog, anyRole},
	}}
	fpPanicCompact = fpPanic{group: "compact", points: []point{
		{failpoint.CompactBeforeCommitScheduledCompact, anyRole}, {failpoint.CompactAfterCommitScheduledCompact, anyRole},
		{failpoint.CompactBeforeCommitBatch, anyRole}, {failpoint.CompactAfterCommitBatch, anyRole},
		{failpoint.CompactBeforeSetFinishedCompact, anyRole}, {failpoint.CompactAfterSetFinishedCompact, anyRole},
	}}
	fpPanicSnapshot = fpPanic{group: "snapshot", points: []point{
		{failpoint.RaftBeforeSaveSnap, followerRole}, {failpoint.RaftAfterSaveSnap, followerRole},
		{failpoint.RaftBeforeApplySnap, followerRole}, {failpoint.RaftAfterApplySnap, followerRole},
		{failpoint.RaftBeforeSendSnap, leaderRole},
	}}
	fpPanicConfChange = fpPanic{group: "conf-change", points: []point{{failpoint.BeforeApplyOneConfChange, anyRole}}}
	fpPanicWatch      = fpPanic{group: "watch", points: []point{{failpoint.BeforeSendWatchResponse, anyRole}}}
)

func (f fpPanic) Name() string { return "fp-panic-" + f.group }

// Available: the snapshot and conf-change groups need a leader and a
// follower; the others run on one member too.
func (f fpPanic) Available(cfg ClusterConfig) bool {
	return cfg.Size > 1 || (f.group != "snapshot" && f.group != "conf-change")
}

func (f fpPanic) configure(s *Scenario) {
	s.Cluster.Gofail = true
	switch f.group {
	case "apply":
		// Log compaction every 20-60 entries, so that the compact-log
		// points run within the fault's time.
		s.Cluster.SnapshotCount = 20 + s.rnd.IntN(41)
		s.Cluster.CatchupEntries = 1 + s.rnd.IntN(s.Cluster.SnapshotCount/2)
	case "compact":
		// Several deletion batches per compaction, compactions every 100 ms.
		s.Cluster.ExtraArgs = append(s.Cluster.ExtraArgs, "--compaction-batch-limit", strconv.Itoa(2+s.rnd.IntN(9)))
		s.Traffic.profile.Compaction = &traffic.CompactionFrequent
	case "snapshot":
		s.Cluster.SnapshotCount = 10 + s.rnd.IntN(41)
		s.Cluster.CatchupEntries = 1 + s.rnd.IntN(s.Cluster.SnapshotCount/2)
	}
}

// eligible are the group's points that can fire in a cluster of size n.
func (f fpPanic) eligible(n int) []point {
	var ps []point
	for _, p := range f.points {
		if n == 1 && p.role != anyRole {
			continue
		}
		ps = append(ps, p)
	}
	return ps
}

func (f fpPanic) Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error) {
	ps := f.eligible(len(c.Members))
	p := ps[rnd.IntN(len(ps))]
	switch f.group {
	case "snapshot":
		return panicDuringSnapshotCatchup(ctx, c, rnd, p)
	case "conf-change":
		return panicAtConfChange(ctx, c, rnd, p)
	}
	m, err := pickRole(ctx, c, rnd, p.role)
	if err != nil {
		return "", err
	}
	// The traffic (writes, compactions every 100-200 ms, watch responses)
	// runs every point of these groups.
	if err := panicAndRestart(ctx, m, p.name, nil); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s panicked at %s, restarted", m.Name, p.name), nil
}

// pickRole picks a running member of the role (any: the leader or a
// follower, drawn).
func pickRole(ctx context.Context, c *Cluster, rnd *rand.Rand, r role) (*framework.Member, error) {
	switch r {
	case leaderRole:
		return victim(ctx, c, rnd, true)
	case followerRole:
		return victim(ctx, c, rnd, false)
	}
	return victim(ctx, c, rnd, rnd.IntN(2) == 0)
}

// panicAndRestart sets name to panic on m, runs trigger (if any) while
// waiting up to 30 s for m to die, checks that it died of that failpoint,
// and starts it again.
func panicAndRestart(ctx context.Context, m *framework.Member, name string, trigger func() error) error {
	mark := "panic: " + failpoint.PanicMessage(name, "")
	before := strings.Count(m.Logs(), mark)
	if err := m.SetFailpoint(name, "panic"); err != nil {
		return err
	}
	var terr error
	werr := framework.WaitFor(30*time.Second, 50*time.Millisecond, func() (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if !m.Running() {
			return true, nil
		}
		if trigger != nil && terr == nil {
			terr = trigger()
		}
		return false, nil
	})
	if werr != nil {
		// Disarm it so that the member does not die later, unexpectedly.
		_ = m.SetFailpoint(name, "off")
		return fmt.Errorf("%s did not reach failpoint %s (trigger: %v): %w", m.Name, name, terr, werr)
	}
	m.Kill9() // reaps the process
	if after := strings.Count(m.Logs(), mark); after <= before {
		return fmt.Errorf("%s exited, but not of failpoint %s; log tail:\n%s", m.Name, name, tail(m.Logs(), 2000))
	}
	m.StartAgain()
	return nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// panicDuringSnapshotCatchup arms p (on the follower that will be cut off,
// or on the leader for the send side) and cuts a follower off until it has
// to catch up by snapshot; the armed member dies while the snapshot is
// sent or installed, is started again, and the follower must then serve
// linearizable reads (Inject's caller waits for that).
func panicDuringSnapshotCatchup(ctx context.Context, c *Cluster, rnd *rand.Rand, p point) (string, error) {
	f, err := c.Follower(ctx, rnd.IntN)
	if err != nil {
		return "", err
	}
	lagged, err := cutOffUntilTrimmed(ctx, c, rnd, f)
	target := f
	if err == nil && p.role == leaderRole {
		// The member that will send the snapshot, chosen after the
		// cut-off: leadership may have moved during it.
		target, err = c.Leader(ctx)
	}
	if err != nil {
		f.Proxy.Heal()
		return "", err
	}
	// Arm after the cut-off: the follower installs a snapshot only when
	// its link is back.
	err = panicAndRestart(ctx, target, p.name, func() error { f.Proxy.Heal(); return nil })
	f.Proxy.Heal()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("follower %s cut off (%s); %s panicked at %s during the snapshot catch-up, restarted", f.Name, lagged, target.Name, p.name), nil
}

// panicAtConfChange arms p on a member and proposes a conf change (a
// MemberUpdate of a random member to its own peer URL) through another one.
func panicAtConfChange(ctx context.Context, c *Cluster, rnd *rand.Rand, p point) (string, error) {
	m, err := pickRole(ctx, c, rnd, p.role)
	if err != nil {
		return "", err
	}
	others := c.others(m)
	upd := c.Members[rnd.IntN(len(c.Members))]
	id, err := c.MemberID(ctx, upd)
	if err != nil {
		return "", err
	}
	cl, err := c.client(others[0].ClientURL)
	if err != nil {
		return "", err
	}
	defer cl.Close()
	proposed := false
	err = panicAndRestart(ctx, m, p.name, func() error {
		if proposed {
			return nil
		}
		uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		// The update may fail when the member that dies leads; it may
		// still have been committed. Either way the next tick retries
		// until m has died.
		if _, err := cl.MemberUpdate(uctx, id, []string{upd.PeerURL}); err != nil {
			return nil
		}
		proposed = true
		return nil
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s panicked at %s applying a MemberUpdate of %s, restarted", m.Name, p.name, upd.Name), nil
}

// fpSleep slows one member (or every member) down at a failpoint for a
// while: a slow disk sync of the Raft log (raftBeforeSave/raftAfterSave),
// a slow commit of the apply batch (beforeCommit/afterCommit), or a slow
// watch stream (beforeSendWatchResponse, etcd's
// SleepBeforeSendWatchResponse). The failpoint must have run at least once
// (gofail's count) before it is turned off.
type fpSleep struct {
	name   string
	points []string
}

var (
	diskSlowRaft   = fpSleep{name: "disk-slow-raft-sync", points: []string{failpoint.RaftBeforeSave, failpoint.RaftAfterSave}}
	diskSlowCommit = fpSleep{name: "disk-slow-commit", points: []string{failpoint.BeforeCommit, failpoint.AfterCommit}}
	fpSlowWatch    = fpSleep{name: "fp-sleep-watch", points: []string{failpoint.BeforeSendWatchResponse}}
)

func (f fpSleep) Name() string               { return f.name }
func (fpSleep) Available(ClusterConfig) bool { return true }
func (fpSleep) configure(s *Scenario)        { s.Cluster.Gofail = true }
func (f fpSleep) Inject(ctx context.Context, c *Cluster, rnd *rand.Rand) (string, error) {
	name := f.points[rnd.IntN(len(f.points))]
	ms := 20 + rnd.IntN(281)
	var targets []*framework.Member
	who := "every member"
	if len(c.Members) == 1 || rnd.IntN(3) > 0 {
		m, err := victim(ctx, c, rnd, rnd.IntN(2) == 0)
		if err != nil {
			return "", err
		}
		targets, who = []*framework.Member{m}, m.Name
	} else {
		targets = c.Members
	}
	term := fmt.Sprintf("sleep(%d)", ms)
	for _, m := range targets {
		if err := m.SetFailpoint(name, term); err != nil {
			return "", err
		}
	}
	d := between(rnd, time.Second, 3*time.Second)
	perr := pause(ctx, d)
	// Until it ran on every member it was set on, bounded.
	hits := make([]int, len(targets))
	werr := framework.WaitFor(30*time.Second, 50*time.Millisecond, func() (bool, error) {
		done := true
		for i, m := range targets {
			if hits[i] == 0 {
				n, err := failpointCount(ctx, m, name)
				if err != nil {
					return false, err
				}
				hits[i] = n
			}
			done = done && hits[i] > 0
		}
		return done, nil
	})
	var errs []string
	for _, m := range targets {
		if err := m.SetFailpoint(name, "off"); err != nil {
			errs = append(errs, err.Error())
		}
	}
	switch {
	case perr != nil:
		return "", perr
	case werr != nil:
		return "", fmt.Errorf("%s=%s on %s: did not run (hits %v): %w", name, term, who, hits, werr)
	case errs != nil:
		return "", fmt.Errorf("turning %s off: %s", name, strings.Join(errs, "; "))
	}
	return fmt.Sprintf("%s=%s on %s for %v (hits %v)", name, term, who, d.Round(time.Millisecond), hits), nil
}

// failpointCount asks m's gofail endpoint how many times the failpoint's
// terms ran since they were set (GET /<name>/count).
func failpointCount(ctx context.Context, m *framework.Member, name string) (int, error) {
	addr := m.FailpointAddr()
	if addr == "" {
		return 0, fmt.Errorf("%s has no gofail endpoint", m.Name)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+addr+"/"+name+"/count", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("gofail count of %s on %s: %w", name, m.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("gofail count of %s on %s: %s %q %v", name, m.Name, resp.Status, b, err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
