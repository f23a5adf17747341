package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/tests/framework"
)

// How a failpoint case makes the marked step run on the target member.
type fpTrigger int

const (
	fpWrites        fpTrigger = iota // every write runs it
	fpCompact                        // a physical compaction (one batch)
	fpCompactBatch                   // a compaction of several batches
	fpSnapshotCatch                  // a follower that must catch up by snapshot
	fpWatch                          // a watch opened on the target gets its first response
	fpDefrag                         // a Defragment call on the target
)

type fpCase struct {
	name    string
	members int
	leader  bool // target the leader (else a follower; single member: itself)
	trigger fpTrigger
	args    []string
}

// failpointCases is every failpoint of internal/failpoint, with what makes
// it run.
var failpointCases = []fpCase{
	{name: "raftBeforeSave", members: 1},
	{name: "raftAfterSave", members: 1},
	{name: "raftBeforeAdvance", members: 1},
	{name: "beforeApplyOneEntryNormal", members: 1},
	{name: "beforeCommit", members: 1},
	{name: "afterCommit", members: 1},
	{name: "raftBeforeCompactLog", members: 1, args: []string{"--snapshot-count", "30", "--snapshot-catchup-entries", "5"}},
	{name: "raftAfterCompactLog", members: 1, args: []string{"--snapshot-count", "30", "--snapshot-catchup-entries", "5"}},
	{name: "compactBeforeCommitScheduledCompact", members: 1, trigger: fpCompact},
	{name: "compactAfterCommitScheduledCompact", members: 1, trigger: fpCompact},
	{name: "compactBeforeSetFinishedCompact", members: 1, trigger: fpCompact},
	{name: "compactAfterSetFinishedCompact", members: 1, trigger: fpCompact},
	{name: "compactBeforeCommitBatch", members: 1, trigger: fpCompactBatch, args: []string{"--compaction-batch-limit", "5"}},
	{name: "compactAfterCommitBatch", members: 1, trigger: fpCompactBatch, args: []string{"--compaction-batch-limit", "5"}},
	{name: "raftBeforeLeaderSend", members: 3, leader: true},
	{name: "raftBeforeFollowerSend", members: 3},
	{name: "beforeApplyOneConfChange", members: 3, leader: true}, // a member update
	{name: "raftBeforeSaveSnap", members: 3, trigger: fpSnapshotCatch},
	{name: "raftAfterSaveSnap", members: 3, trigger: fpSnapshotCatch},
	{name: "raftBeforeApplySnap", members: 3, trigger: fpSnapshotCatch},
	{name: "raftAfterApplySnap", members: 3, trigger: fpSnapshotCatch},
	{name: "raftBeforeSendSnap", members: 3, leader: true, trigger: fpSnapshotCatch},
	{name: "beforeSendWatchResponse", members: 1, trigger: fpWatch},
	// Runs in the Defragment handler, whose panics the gRPC recoverer
	// would otherwise turn into an error (etcd's robustness suite,
	// Issue14685, needs the member to die there).
	{name: "defragBeforeCopy", members: 1, trigger: fpDefrag},
}

// TestFailpointPanic sets each failpoint to panic on a member of a cluster
// under concurrent writers (the server built with -tags failpoints, set
// over gofail's HTTP endpoint), waits for that member to die of that
// panic, restarts it, and checks that every acknowledged write is there
// with the revision it was acknowledged at, on every member, and that the
// members agree (HashKV).
func TestFailpointPanic(t *testing.T) {
	if os.Getenv(framework.EnvServerBin) != "" {
		t.Skipf("failpoints need metastore built with -tags failpoints, not %s", os.Getenv(framework.EnvServerBin))
	}
	for _, tc := range failpointCases {
		t.Run(tc.name, func(t *testing.T) { runFailpointCase(t, tc) })
	}
}

// TestFailpointEndpoint checks what etcd's tooling relies on: GET / on
// gofail's endpoint lists every failpoint, and PUT of an unknown one fails.
func TestFailpointEndpoint(t *testing.T) {
	if os.Getenv(framework.EnvServerBin) != "" {
		t.Skipf("failpoints need metastore built with -tags failpoints, not %s", os.Getenv(framework.EnvServerBin))
	}
	m := framework.Start(t, framework.WithFailpoints(t, framework.Options{}))
	list, err := m.Failpoints()
	check(t, "list failpoints", err)
	for _, tc := range failpointCases {
		if !strings.Contains(list, "\n"+tc.name+"=") && !strings.HasPrefix(list, tc.name+"=") {
			t.Errorf("gofail's list lacks %s:\n%s", tc.name, list)
		}
	}
	if err := m.SetFailpoint("noSuchFailpoint", "panic"); err == nil {
		t.Fatal("setting an unknown failpoint succeeded")
	}
	check(t, "set sleep", m.SetFailpoint("beforeCommit", "sleep(1)"))
	mustPut(t, m.Client(), context.Background(), "k", "v") // sleep is harmless
}

func runFailpointCase(t *testing.T, tc fpCase) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := tc.args
	if tc.trigger == fpSnapshotCatch {
		args = []string{"--snapshot-count", "50", "--snapshot-catchup-entries", "10"}
	}
	opts := framework.WithFailpoints(t, framework.Options{ExtraArgs: args})
	var ms []*framework.Member
	if tc.members == 1 {
		ms = []*framework.Member{framework.Start(t, opts)}
	} else {
		ms = framework.StartCluster(t, tc.members, opts)
	}
	target, others := pickTarget(t, ctx, ms, tc.leader)

	// Writers go through the members that stay up, so that the
	// cluster keeps acknowledging writes around the crash.
	wc := multiClient(t, endpoints(others, target, tc.members == 1))
	ws := startWriters(t, ctx, wc, "fp/", 3)
	acks := ws.acks
	waitAcks := func(n int) { t.Helper(); ws.waitAcks(t, n, 30*time.Second) }
	waitAcks(20)

	switch tc.trigger {
	case fpWrites:
		setPanic(t, target, tc.name)
		if tc.name == "beforeApplyOneConfChange" {
			// A conf change: a member update that keeps the peer URLs.
			ml, err := wc.MemberList(ctx)
			check(t, "member list", err)
			_, err = wc.MemberUpdate(ctx, ml.Members[0].ID, ml.Members[0].PeerURLs)
			t.Logf("member update: %v", err)
		}
	case fpCompact, fpCompactBatch:
		// Unique keys leave compaction nothing to remove: overwrite one.
		var rev int64
		for i := range 30 {
			rev = mustPut(t, wc, ctx, "overwritten", fmt.Sprint(i)).Header.Revision
		}
		setPanic(t, target, tc.name)
		_, err := wc.Compact(ctx, rev, clientv3.WithCompactPhysical())
		t.Logf("compact(%d): %v", rev, err)
	case fpSnapshotCatch:
		target = triggerSnapshot(t, ctx, tc, ms, target, waitAcks)
	case fpDefrag:
		setPanic(t, target, tc.name)
		_, err := target.Client().Defragment(ctx, target.ClientURL)
		t.Logf("defragment: %v", err)
	case fpWatch:
		setPanic(t, target, tc.name)
		// The watch's created response runs the failpoint. clientv3's
		// Watch returns only once that response arrived, so it is opened
		// on its own goroutine, which ends with wctx.
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		c := target.Client()
		go func() {
			for range c.Watch(wctx, "fp/", clientv3.WithPrefix()) {
			}
		}()
	}
	waitExit(t, target, tc.name)
	if len(ms) > 1 {
		waitAcks(10) // the others go on without the dead member
	}
	target.Kill9() // reap: the process is already gone
	target.StartAgain()
	waitAcks(10)
	ws.Stop()
	verifyAcked(t, ctx, ms, acks)
}

// pickTarget returns the member the case crashes and the others.
func pickTarget(t *testing.T, ctx context.Context, ms []*framework.Member, leader bool) (*framework.Member, []*framework.Member) {
	t.Helper()
	if len(ms) == 1 {
		return ms[0], nil
	}
	var lead *framework.Member
	err := framework.WaitFor(30*time.Second, 50*time.Millisecond, func() (bool, error) {
		for _, m := range ms {
			st, err := m.Client().Status(ctx, m.ClientURL)
			if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
				lead = m
				return true, nil
			}
		}
		return false, nil
	})
	check(t, "find the leader", err)
	for i, m := range ms {
		if (m == lead) == leader {
			return m, append(append([]*framework.Member(nil), ms[:i]...), ms[i+1:]...)
		}
	}
	t.Fatal("no target")
	return nil, nil
}

func endpoints(others []*framework.Member, target *framework.Member, single bool) []string {
	if single {
		return []string{target.ClientURL}
	}
	var eps []string
	for _, m := range others {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

func multiClient(t *testing.T, eps []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	check(t, "client", err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// triggerSnapshot makes a follower catch up by snapshot: it kills one
// follower, writes more than the leader's Raft log keeps (--snapshot-count
// 50, --snapshot-catchup-entries 10), and starts it again. The failpoint is
// set on that follower (from its start) or, for a leader-side point, on
// whichever member leads once the writes are done (leadership may have
// moved since the case began); that member is returned as the target.
func triggerSnapshot(t *testing.T, ctx context.Context, tc fpCase, ms []*framework.Member, target *framework.Member, waitAcks func(int)) *framework.Member {
	t.Helper()
	lagging := target
	if tc.leader {
		for _, m := range ms {
			if m != target {
				lagging = m
				break
			}
		}
	}
	lagging.Kill9()
	waitAcks(150)
	terms := ""
	if lagging == target {
		terms = fmt.Sprintf("%s=panic(%q)", tc.name, tc.name)
	} else {
		var up []*framework.Member
		for _, m := range ms {
			if m != lagging {
				up = append(up, m)
			}
		}
		target, _ = pickTarget(t, ctx, up, true)
		setPanic(t, target, tc.name)
	}
	check(t, "start "+lagging.Name, lagging.SpawnWithFailpoints(terms))
	return target
}

// setPanic makes the failpoint panic with its own name, so that the log
// says which failpoint fired (a bare "panic" term prints "{}").
func setPanic(t *testing.T, m *framework.Member, name string) {
	t.Helper()
	check(t, "set failpoint "+name, m.SetFailpoint(name, fmt.Sprintf("panic(%q)", name)))
}

// waitExit waits until the target dies and checks it died of the failpoint.
func waitExit(t *testing.T, m *framework.Member, name string) {
	t.Helper()
	err := framework.WaitFor(60*time.Second, 20*time.Millisecond, func() (bool, error) { return !m.Running(), nil })
	if err != nil {
		t.Fatalf("member %s still running 60s after failpoint %s was set to panic", m.Name, name)
	}
	if !strings.Contains(m.Logs(), "failpoint panic: "+name) {
		t.Fatalf("member %s exited (%v) without the panic of failpoint %s", m.Name, m.ExitError(), name)
	}
}

// verifyAcked checks every member: each acknowledged key is there with the
// revision its put was acknowledged at, and all members hash the same.
func verifyAcked(t *testing.T, ctx context.Context, ms []*framework.Member, acks *ackLog) {
	t.Helper()
	revs, maxRev, errs := acks.snapshot()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(revs) == 0 {
		t.Fatal("no write was acknowledged")
	}
	var hash uint32
	for i, m := range ms {
		c := m.Client()
		// A restarted member catches up through Raft: wait for it to have
		// applied the last acknowledged revision, then read its own state.
		var got *clientv3.GetResponse
		err := framework.WaitFor(30*time.Second, 50*time.Millisecond, func() (bool, error) {
			r, err := c.Get(ctx, "fp/", clientv3.WithPrefix(), clientv3.WithSerializable())
			if err != nil {
				return false, nil
			}
			got = r
			return r.Header.Revision >= maxRev, nil
		})
		if err != nil {
			t.Fatalf("member %s did not reach revision %d (at %v)", m.Name, maxRev, got)
		}
		present := make(map[string]int64, len(got.Kvs))
		for _, kv := range got.Kvs {
			if string(kv.Value) != string(kv.Key) {
				t.Fatalf("member %s: %s = %q", m.Name, kv.Key, kv.Value)
			}
			present[string(kv.Key)] = kv.ModRevision
		}
		for k, rev := range revs {
			if p, ok := present[k]; !ok || p != rev {
				t.Fatalf("member %s: acknowledged %s at revision %d, now present=%v at revision %d", m.Name, k, rev, ok, p)
			}
		}
		h, err := c.HashKV(ctx, m.ClientURL, maxRev)
		check(t, "hashkv", err)
		if i > 0 && h.Hash != hash {
			t.Fatalf("member %s: HashKV(%d) = %d, member %s: %d", m.Name, maxRev, h.Hash, ms[0].Name, hash)
		}
		hash = h.Hash
	}
	t.Logf("%d acknowledged writes intact on %d member(s) up to revision %d", len(revs), len(ms), maxRev)
}
