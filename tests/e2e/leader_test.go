package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/metastore/metastore/internal/lifecycle"
	"github.com/metastore/metastore/tests/framework"
)

// fastElection makes elections (and so the leader monitor's three election
// timeouts) short, so the tests wait seconds, not tens of seconds.
var fastElection = []string{"--heartbeat-interval=50", fmt.Sprintf("--election-timeout=%d", electionTimeout.Milliseconds())}

// electionTimeout is fastElection's.
const electionTimeout = 500 * time.Millisecond

// leaderOf returns the index in ms of the member that leads, asking each
// running member's Status.
func leaderOf(t *testing.T, ctx context.Context, ms []*framework.Member) int {
	t.Helper()
	for i, m := range ms {
		if !m.Running() {
			continue
		}
		st, err := m.Client().Status(ctx, strings.TrimPrefix(m.ClientURL, "http://"))
		check(t, "status", err)
		if st.Leader == st.Header.MemberId {
			return i
		}
	}
	t.Fatalf("no member leads")
	return -1
}

func isNoLeader(err error) bool {
	return err != nil && (errors.Is(rpctypes.Error(err), rpctypes.ErrNoLeader) || strings.Contains(err.Error(), rpctypes.ErrNoLeader.Error()))
}

// TestRequireLeaderWatchAndGet: a watch opened with clientv3.WithRequireLeader
// on a member cut off from the rest of its cluster ends with etcd's "no
// leader" error (instead of stalling silently), so the client can fail over;
// a unary request with WithRequireLeader on that member fails with the same
// error instead of timing out. Meanwhile its gRPC health service stays
// SERVING, as etcd's does (internal/member/status/health.go).
func TestRequireLeaderWatchAndGet(t *testing.T) {
	ms := framework.StartCluster(t, 3, framework.Options{ExtraArgs: fastElection})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a := ms[0]
	c := a.Client()

	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	wch := c.Watch(wctx, "rl/", clientv3.WithPrefix())
	// The watch works while there is a leader.
	_, err := c.Put(ctx, "rl/1", "v")
	check(t, "put", err)
	select {
	case resp, ok := <-wch:
		if !ok || resp.Err() != nil || len(resp.Events) != 1 {
			t.Fatalf("first watch response: ok=%v err=%v events=%d", ok, resp.Err(), len(resp.Events))
		}
	case <-ctx.Done():
		t.Fatal("no watch event for the first put")
	}

	// Every status the member's gRPC health service publishes from here on.
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	hstream, err := healthpb.NewHealthClient(c.ActiveConnection()).Watch(hctx, &healthpb.HealthCheckRequest{})
	check(t, "health watch", err)
	first, err := hstream.Recv()
	check(t, "first health status", err)
	if first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health with a leader: %v, want SERVING", first.GetStatus())
	}
	statuses := make(chan healthpb.HealthCheckResponse_ServingStatus, 16)
	go func() {
		defer close(statuses)
		for {
			r, err := hstream.Recv()
			if err != nil {
				return
			}
			select {
			case statuses <- r.GetStatus():
			case <-hctx.Done():
				return
			}
		}
	}()

	ms[1].Kill9()
	ms[2].Kill9()
	lost := time.Now()

	// The watch ends with "no leader": the member notices within an
	// election timeout and cancels the stream after three more.
	var closeErr error
	deadline := time.After(30 * time.Second)
loop:
	for {
		select {
		case resp, ok := <-wch:
			if !ok {
				break loop
			}
			if resp.Err() != nil {
				closeErr = resp.Err()
			}
		case <-deadline:
			t.Fatal("the WithRequireLeader watch on a member without a leader did not end within 30s")
		}
	}
	t.Logf("watch ended %v after the peers were killed: %v", time.Since(lost).Round(time.Millisecond), closeErr)
	if !isNoLeader(closeErr) {
		t.Fatalf("watch ended with %v, want %q", closeErr, rpctypes.ErrNoLeader)
	}

	gctx, gcancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), 20*time.Second)
	defer gcancel()
	_, err = c.Get(gctx, "rl/1")
	if !isNoLeader(err) {
		t.Fatalf("Get WithRequireLeader on a member without a leader: %v, want %q", err, rpctypes.ErrNoLeader)
	}
	// A request without the metadata is not refused by the check: a
	// serializable read is still served locally.
	resp, err := c.Get(ctx, "rl/1", clientv3.WithSerializable())
	check(t, "serializable get without a leader", err)
	if len(resp.Kvs) != 1 {
		t.Fatalf("serializable get: %d keys", len(resp.Kvs))
	}

	// The health checks run every lifecycle.DefaultHealthInterval: once the member has been
	// without a leader for longer than that (it loses it within an
	// election timeout), at least one ran meanwhile.
	window := time.NewTimer(time.Until(lost.Add(electionTimeout + lifecycle.DefaultHealthInterval + time.Second)))
	defer window.Stop()
	for done := false; !done; {
		select {
		case st, ok := <-statuses:
			if !ok {
				t.Fatal("health watch ended while the member had no leader")
			}
			if st != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("gRPC health of a member without a leader: %v, want SERVING (as etcd)", st)
			}
		case <-window.C:
			done = true
		}
	}
	hr, err := healthpb.NewHealthClient(c.ActiveConnection()).Check(ctx, &healthpb.HealthCheckRequest{})
	check(t, "health check without a leader", err)
	if hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health check of a member without a leader: %v, want SERVING (as etcd)", hr.GetStatus())
	}
}

// TestMoveLeaderWaitsForTransferee: MoveLeader returns once the transferee
// leads, as etcd's does, so the target's Status right after it says so.
func TestMoveLeaderWaitsForTransferee(t *testing.T) {
	ms := framework.StartCluster(t, 3, framework.Options{ExtraArgs: fastElection})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for round := 0; round < 3; round++ {
		li := leaderOf(t, ctx, ms)
		ti := (li + 1) % len(ms)
		target := ms[ti]
		st, err := target.Client().Status(ctx, strings.TrimPrefix(target.ClientURL, "http://"))
		check(t, "status of the target", err)
		lc := ms[li].Client()
		_, err = lc.MoveLeader(ctx, st.Header.MemberId)
		check(t, "move leader", err)
		st, err = target.Client().Status(ctx, strings.TrimPrefix(target.ClientURL, "http://"))
		check(t, "status of the target after move-leader", err)
		if st.Leader != st.Header.MemberId {
			t.Fatalf("round %d: right after MoveLeader returned, the target %x says the leader is %x", round, st.Header.MemberId, st.Leader)
		}
	}
}

// TestGracefulStopHandsOffLeadership: a leader stopped with SIGTERM first
// hands leadership to a follower (raft's MsgTimeoutNow, no election
// timeout), so writers through the other members go on without waiting for
// an election. A write forwarded to the old leader in the instant of the
// transfer is dropped by raft (a leader refuses proposals while it
// transfers) and times out: etcd 3.7.3 loses that one too (ADR 0012), so
// each writer may see at most one failed write.
func TestGracefulStopHandsOffLeadership(t *testing.T) {
	// A long election timeout: were the new leader elected by timeout, the
	// writers would stall for more than 5 s.
	const electionTimeout = 5 * time.Second
	ms := framework.StartCluster(t, 3, framework.Options{ExtraArgs: []string{"--heartbeat-interval=100", "--election-timeout=5000"}})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	li := leaderOf(t, ctx, ms)
	var followers []*framework.Member
	for i, m := range ms {
		if i != li {
			followers = append(followers, m)
		}
	}
	stop := make(chan struct{})
	type result struct {
		ok     int
		errs   []error
		maxGap time.Duration
	}
	results := make(chan result, len(followers))
	for i, f := range followers {
		c := f.Client()
		go func() {
			var r result
			defer func() { results <- r }()
			last := time.Now()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := c.Put(wctx, "handoff/"+strings.Repeat("x", i+1), strings.Repeat("v", n%16+1))
				wcancel()
				// The gap counts failed attempts too: a write the
				// writer was still waiting for at the end is a stall.
				if gap := time.Since(last); gap > r.maxGap {
					r.maxGap = gap
				}
				if err != nil {
					r.errs = append(r.errs, err)
					continue
				}
				r.ok++
				last = time.Now()
			}
		}()
	}
	// Let the writers run before and after the stop.
	waitWrites := func(min int64) {
		t.Helper()
		c := followers[0].Client()
		check(t, "wait for writes", framework.WaitFor(30*time.Second, 20*time.Millisecond, func() (bool, error) {
			resp, err := c.Get(ctx, "handoff/", clientv3.WithPrefix(), clientv3.WithSerializable())
			if err != nil {
				return false, nil
			}
			return resp.Header.Revision >= min, nil
		}))
	}
	waitWrites(50)
	ms[li].Stop()
	resp, err := followers[0].Client().Get(ctx, "handoff/", clientv3.WithPrefix())
	check(t, "get after the stop", err)
	waitWrites(resp.Header.Revision + 50)
	close(stop)
	for range followers {
		r := <-results
		t.Logf("writer: %d writes acknowledged, %d failed %v, longest wait since the last acknowledgement %v", r.ok, len(r.errs), r.errs, r.maxGap.Round(time.Millisecond))
		if len(r.errs) > 1 {
			t.Errorf("%d writes of one writer failed while the leader stopped, first: %v", len(r.errs), r.errs[0])
		}
		if r.maxGap >= electionTimeout {
			t.Errorf("writes stalled for %v, an election timeout: the leadership was not handed off", r.maxGap)
		}
	}
	transferred := false
	for _, f := range followers {
		if strings.Contains(f.Logs(), "received MsgTimeoutNow") {
			transferred = true
		}
	}
	if !transferred {
		t.Fatalf("no follower logged raft's MsgTimeoutNow: the new leader was not elected by a transfer")
	}
}

// startOneOfThree starts member 0 of a new 3-member cluster; members 1 and
// 2 are started with a bad flag, so they exit at once and can be started
// for real later (StartAgainWith).
func startOneOfThree(t *testing.T) []*framework.Member {
	t.Helper()
	bad := append(append([]string(nil), fastElection...), "--log-level=bogus")
	ms := framework.StartCluster(t, 3, framework.Options{ExtraArgs: fastElection, MemberOptions: func(i int, o *framework.Options) {
		o.NoWait = true
		if i > 0 {
			o.ExtraArgs = bad
		}
	}})
	check(t, "members 1 and 2 exit on their bad flag", framework.WaitFor(30*time.Second, 20*time.Millisecond, func() (bool, error) {
		return !ms[1].Running() && !ms[2].Running(), nil
	}))
	return ms
}

// TestStartWaitsForQuorum: a member of a new cluster whose peers come up
// long after it keeps waiting for them (as etcd does) instead of exiting
// after a start deadline, and serves once they are up.
func TestStartWaitsForQuorum(t *testing.T) {
	ms := startOneOfThree(t)
	// With --election-timeout=500 the old start deadline was 5 s plus seven
	// election timeouts (8.5 s); member 0 must outlive it well.
	errExited := errors.New("member 0 exited while waiting for its peers")
	err := framework.WaitFor(20*time.Second, 50*time.Millisecond, func() (bool, error) {
		if !ms[0].Running() {
			return false, errExited
		}
		return false, nil
	})
	if errors.Is(err, errExited) {
		t.Fatalf("%v: %v\n%s", err, ms[0].ExitError(), ms[0].Logs())
	}
	ms[1].StartAgainWith(fastElection...)
	ms[2].StartAgainWith(fastElection...)
	check(t, "member 0 serves once its peers are up", framework.WaitFor(60*time.Second, 50*time.Millisecond, func() (bool, error) {
		if !ms[0].Running() {
			return false, errExited
		}
		return strings.Contains(ms[0].Logs(), framework.ReadyLine), nil
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = ms[0].Client().Put(ctx, "late", "peers")
	check(t, "put through member 0", err)
}

// TestStopWhileWaitingForQuorum: SIGTERM still stops a member that waits
// for its cluster to form (Member.Stop fails the test unless it exits
// within its bound).
func TestStopWhileWaitingForQuorum(t *testing.T) {
	ms := startOneOfThree(t)
	// Wait until member 0 is in its wait: its client port accepts.
	check(t, "member 0 listens", framework.WaitFor(30*time.Second, 20*time.Millisecond, func() (bool, error) {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(ms[0].ClientURL, "http://"), time.Second)
		if err != nil {
			return false, nil
		}
		_ = conn.Close()
		return true, nil
	}))
	begin := time.Now()
	ms[0].Stop()
	if d := time.Since(begin); d > 5*time.Second {
		t.Fatalf("member 0 took %v to stop while waiting for its cluster", d)
	}
}
