package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/clock"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

type harness struct {
	t     *testing.T
	eng   storage.Engine
	clock *clock.Fake
	le    *Lessor
	mu    sync.Mutex // serialises "apply" like the single apply goroutine
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, eng: memory.New(), clock: clock.NewFake()}
	t.Cleanup(func() { _ = h.eng.Close() })
	h.le = h.open(cfg)
	return h
}

func (h *harness) open(cfg Config) *Lessor {
	h.t.Helper()
	cfg.Engine = h.eng
	cfg.Clock = h.clock
	if cfg.ElectionTimeout == 0 {
		cfg.ElectionTimeout = time.Second
	}
	le, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	return le
}

// apply runs fn as one apply batch and commits it.
func (h *harness) apply(fn func(b storage.Batch) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.eng.NewBatch()
	defer b.Close()
	if err := fn(b); err != nil {
		h.le.Discard()
		return err
	}
	if err := b.Commit(false); err != nil {
		h.t.Fatal(err)
	}
	h.le.Commit()
	return nil
}

func (h *harness) grant(id, ttl int64) int64 {
	h.t.Helper()
	var got int64
	if err := h.apply(func(b storage.Batch) (err error) {
		got, err = h.le.StageGrant(b, id, ttl)
		return err
	}); err != nil {
		h.t.Fatalf("grant %d: %v", id, err)
	}
	return got
}

func (h *harness) revoke(id int64) ([][]byte, error) {
	var keys [][]byte
	err := h.apply(func(b storage.Batch) (err error) {
		keys, err = h.le.StageRevoke(b, id)
		return err
	})
	return keys, err
}

func (h *harness) attach(id int64, keys ...string) {
	h.t.Helper()
	if err := h.apply(func(b storage.Batch) error {
		for _, k := range keys {
			if err := h.le.Attach(b, id, []byte(k)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
}

func keyStrings(ks [][]byte) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

func TestGrantTTLLimits(t *testing.T) {
	h := newHarness(t, Config{ElectionTimeout: 1500 * time.Millisecond})
	if got := h.grant(1, 1); got != 3 { // ⌈1.5 × 1.5 s⌉
		t.Fatalf("ttl 1 granted as %d, want the minimum 3", got)
	}
	if got := h.grant(2, 60); got != 60 {
		t.Fatalf("ttl 60 granted as %d", got)
	}
	if got := h.grant(3, MaxTTL); got != MaxTTL {
		t.Fatalf("max ttl granted as %d", got)
	}
	cases := []struct {
		id, ttl int64
		want    error
	}{
		{0, 10, ErrLeaseNotFound},
		{4, MaxTTL + 1, ErrLeaseTTLTooLarge},
		{2, 10, ErrLeaseExists},
	}
	for _, c := range cases {
		err := h.apply(func(b storage.Batch) error { _, err := h.le.StageGrant(b, c.id, c.ttl); return err })
		if !errors.Is(err, c.want) {
			t.Errorf("grant(%d, %d) = %v, want %v", c.id, c.ttl, err, c.want)
		}
	}
	if MinTTL(time.Second) != 2 {
		t.Fatalf("MinTTL(1s) = %d, want 2", MinTTL(time.Second))
	}
}

func TestStagedChangesInvisibleUntilCommit(t *testing.T) {
	h := newHarness(t, Config{})
	b := h.eng.NewBatch()
	defer b.Close()
	if _, err := h.le.StageGrant(b, 7, 10); err != nil {
		t.Fatal(err)
	}
	if !h.le.Exists(7) {
		t.Fatal("apply side must see a lease granted earlier in the same batch")
	}
	if err := h.le.Attach(b, 7, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.le.Lookup(7); ok {
		t.Fatal("readers must not see a staged grant")
	}
	keys, err := h.le.StageRevoke(b, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := keyStrings(keys); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("revoke in the same batch saw keys %q", got)
	}
	if h.le.Exists(7) || h.le.Attach(b, 7, []byte("b")) == nil {
		t.Fatal("a lease revoked earlier in the batch must be gone for later entries")
	}
	h.le.Discard()
	if h.le.Exists(7) {
		t.Fatal("discarded grant still exists")
	}
}

func TestPersistenceAcrossReopen(t *testing.T) {
	h := newHarness(t, Config{})
	h.grant(1, 30)
	h.grant(2, 40)
	h.attach(1, "k1", "k2", "k\x00bin\xff")
	h.attach(2, "k3")
	if err := h.apply(func(b storage.Batch) error { return h.le.Detach(b, 1, []byte("k2")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := h.revoke(2); err != nil {
		t.Fatal(err)
	}
	if _, err := h.revoke(2); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("second revoke: %v, want ErrLeaseNotFound", err)
	}

	re := h.open(Config{})
	if _, ok := re.Lookup(2); ok {
		t.Fatal("revoked lease came back after reopen")
	}
	st, ok := re.Lookup(1)
	if !ok || st.GrantedTTL != 30 {
		t.Fatalf("lease 1 after reopen: %+v %v", st, ok)
	}
	keys, err := re.Keys(1)
	if err != nil {
		t.Fatal(err)
	}
	if got := keyStrings(keys); !slices.Equal(got, []string{"k\x00bin\xff", "k1"}) {
		t.Fatalf("keys after reopen = %q", got)
	}
	if keys, _ := re.Keys(2); len(keys) != 0 {
		t.Fatalf("revoked lease kept attachments %q", keyStrings(keys))
	}
	if ls := re.Leases(); len(ls) != 1 || ls[0].ID != 1 {
		t.Fatalf("Leases() = %+v", ls)
	}
}

func TestRenew(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	h.grant(1, 10)
	_, err := h.le.Renew(ctx, 1)
	if !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("renew on a non-primary: %v", err)
	}
	// Clients see etcd's text (its lease.ErrNotPrimary) while leadership
	// moves; lease requests are forwarded to the leader otherwise.
	if err.Error() != "not a primary lessor" {
		t.Fatalf("renew on a non-primary: %q, want etcd's %q", err, "not a primary lessor")
	}
	h.le.Promote(0)
	if _, err := h.le.Renew(ctx, 99); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("renew unknown: %v", err)
	}
	h.clock.Advance(8 * time.Second)
	if st, _ := h.le.Lookup(1); st.TTL() != 2 {
		t.Fatalf("remaining after 8 s of 10: %d", st.TTL())
	}
	ttl, err := h.le.Renew(ctx, 1)
	if err != nil || ttl != 10 {
		t.Fatalf("renew = %d, %v", ttl, err)
	}
	if st, _ := h.le.Lookup(1); st.TTL() != 10 {
		t.Fatalf("remaining after renew: %d", st.TTL())
	}

	// An expired lease is not resurrected: renew waits for its revocation.
	h.clock.Advance(11 * time.Second)
	errc := make(chan error, 1)
	go func() { _, err := h.le.Renew(ctx, 1); errc <- err }()
	if ids := h.le.Expired(10); !slices.Equal(ids, []int64{1}) {
		t.Fatalf("Expired = %v", ids)
	}
	if _, err := h.revoke(1); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("renew of an expired lease: %v", err)
	}

	// ... or fails once the lessor is demoted.
	h.grant(2, 10)
	h.clock.Advance(11 * time.Second)
	go func() { _, err := h.le.Renew(ctx, 2); errc <- err }()
	// Demote may run before the renew starts waiting; both orders give ErrNotPrimary.
	h.le.Demote()
	if err := <-errc; !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("renew during demotion: %v", err)
	}
}

func TestExpiredOrderAndRetry(t *testing.T) {
	h := newHarness(t, Config{ExpiredRetryInterval: 3 * time.Second})
	h.le.Promote(0)
	for i := int64(1); i <= 5; i++ {
		h.grant(i, 10+i) // lease i expires at 10+i s
	}
	h.grant(100, 1000)
	if ids := h.le.Expired(10); len(ids) != 0 {
		t.Fatalf("expired before any TTL ran out: %v", ids)
	}
	h.clock.Advance(14 * time.Second)
	if ids := h.le.Expired(2); !slices.Equal(ids, []int64{1, 2}) {
		t.Fatalf("first batch %v, want [1 2] (soonest first, bounded)", ids)
	}
	if ids := h.le.Expired(10); !slices.Equal(ids, []int64{3, 4}) {
		t.Fatalf("second batch %v, want [3 4]", ids)
	}
	if ids := h.le.Expired(10); len(ids) != 0 {
		t.Fatalf("handed out again before the retry interval: %v", ids)
	}
	// 1 and 2 were revoked; 3 and 4 were not: they come back after the retry interval.
	for _, id := range []int64{1, 2} {
		if _, err := h.revoke(id); err != nil {
			t.Fatal(err)
		}
	}
	h.clock.Advance(3 * time.Second)
	ids := h.le.Expired(10)
	slices.Sort(ids) // handed out again at the same instant: any order
	if !slices.Equal(ids, []int64{3, 4, 5}) {
		t.Fatalf("after retry interval %v, want [3 4 5]", ids)
	}
}

func TestPromoteExtendsAndDemoteStops(t *testing.T) {
	h := newHarness(t, Config{})
	h.grant(1, 10)
	h.clock.Advance(time.Hour) // nobody times leases before Promote
	h.le.Promote(time.Second)
	if st, _ := h.le.Lookup(1); st.TTL() != 11 {
		t.Fatalf("after promote with 1 s extension: TTL %d, want 11", st.TTL())
	}
	h.le.Demote()
	h.clock.Advance(time.Hour)
	if ids := h.le.Expired(10); ids != nil {
		t.Fatalf("a demoted lessor handed out %v", ids)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := h.le.WaitPrimary(ctx); err == nil {
		t.Fatal("WaitPrimary returned while demoted")
	}
	h.le.Promote(0)
	if err := h.le.WaitPrimary(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestPromoteSpreadsMassExpiry(t *testing.T) {
	h := newHarness(t, Config{RevokeRate: 100})
	if err := h.apply(func(b storage.Batch) error {
		for i := int64(1); i <= 300; i++ {
			if _, err := h.le.StageGrant(b, i, 10); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.le.Promote(0)
	// 300 leases due at 10 s with a target of 75 per second: spread over ~4 s.
	perSecond := map[int]int{}
	for _, st := range h.le.Leases() {
		perSecond[int(st.Remaining/time.Second)]++
	}
	for s, n := range perSecond {
		if n > 76 {
			t.Errorf("%d leases expire in second %d, want at most ~75", n, s)
		}
	}
	if len(perSecond) < 4 {
		t.Errorf("expiries spread over %d seconds, want ≥ 4: %v", len(perSecond), perSecond)
	}
}

func TestCheckpointRestoresRemainingTTL(t *testing.T) {
	cfg := Config{CheckpointInterval: time.Minute}
	h := newHarness(t, cfg)
	h.le.Promote(0)
	h.grant(1, 600)
	h.grant(2, 30) // shorter than the interval: never checkpointed
	h.clock.Advance(59 * time.Second)
	if cps := h.le.DueCheckpoints(10); len(cps) != 0 {
		t.Fatalf("checkpoint before the interval: %v", cps)
	}
	h.clock.Advance(2 * time.Second)
	cps := h.le.DueCheckpoints(10)
	if len(cps) != 1 || cps[0].ID != 1 || cps[0].Remaining_TTL != 539 {
		t.Fatalf("due checkpoints = %v, want lease 1 with 539 s", cps)
	}
	if err := h.apply(func(b storage.Batch) error { return h.le.StageCheckpoint(b, cps) }); err != nil {
		t.Fatal(err)
	}
	if !h.le.NeedsCheckpointClear(1) {
		t.Fatal("a checkpointed lease must be cleared before renewal")
	}

	// Restart: the remaining TTL comes back, not the granted one.
	re := h.open(cfg)
	re.Promote(time.Second)
	if st, _ := re.Lookup(1); st.TTL() != 540 || st.GrantedTTL != 600 {
		t.Fatalf("after restart: %+v (TTL %d), want 539 s + 1 s extension", st, st.TTL())
	}
	// The next checkpoint is scheduled after the applied one.
	h.le = re
	h.clock.Advance(61 * time.Second)
	if cps := re.DueCheckpoints(10); len(cps) != 1 || cps[0].Remaining_TTL != 479 {
		t.Fatalf("next checkpoint = %v", cps)
	}
	// Clearing (what a renewal proposes) drops the remaining TTL.
	if err := h.apply(func(b storage.Batch) error {
		return re.StageCheckpoint(b, []*pb.LeaseCheckpoint{{ID: 1}, {ID: 999, Remaining_TTL: 5}})
	}); err != nil {
		t.Fatal(err)
	}
	if re.NeedsCheckpointClear(1) || re.Exists(999) {
		t.Fatal("clear did not apply, or a checkpoint created a lease")
	}
	re2 := h.open(cfg)
	re2.Promote(0)
	if st, _ := re2.Lookup(1); st.TTL() != 600 {
		t.Fatalf("after clear and restart: TTL %d, want 600", st.TTL())
	}
}

// fakeProposer revokes through the harness like apply would, and records
// what the expiry loop asked for.
type fakeProposer struct {
	h         *harness
	mu        sync.Mutex
	leader    bool
	inFlight  int
	maxFlight int
	revoked   int
	perTick   []int
	cps       []*pb.LeaseCheckpointRequest
}

func (p *fakeProposer) IsLeader() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leader
}

func (p *fakeProposer) LeaderReady(context.Context) error { return nil }

func (p *fakeProposer) Revoke(ctx context.Context, id int64) error {
	p.mu.Lock()
	p.inFlight++
	p.maxFlight = max(p.maxFlight, p.inFlight)
	p.mu.Unlock()
	_, err := p.h.revoke(id)
	p.mu.Lock()
	p.inFlight--
	p.revoked++
	p.perTick[len(p.perTick)-1]++
	p.mu.Unlock()
	return err
}

func (p *fakeProposer) Checkpoint(ctx context.Context, r *pb.LeaseCheckpointRequest) error {
	p.mu.Lock()
	p.cps = append(p.cps, r)
	p.mu.Unlock()
	return p.h.apply(func(b storage.Batch) error { return p.h.le.StageCheckpoint(b, r.Checkpoints) })
}

func TestRunExpiryBatchesMassExpiry(t *testing.T) {
	const n = 10_000
	h := newHarness(t, Config{})
	p := &fakeProposer{h: h, leader: true}
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// RunExpiry asks for the leader-change channel at the start of every
	// pass: use that to open a new per-pass count.
	passStart := func() <-chan struct{} {
		p.mu.Lock()
		p.perTick = append(p.perTick, 0)
		p.mu.Unlock()
		return nil
	}
	go func() {
		defer close(done)
		h.le.RunExpiry(ctx, tick, passStart, p)
	}()
	// The first pass promotes; grant afterwards so every lease expires together.
	tick <- time.Time{}
	if !h.le.IsPrimary() {
		t.Fatal("the loop did not promote the lessor of a leader")
	}
	if err := h.apply(func(b storage.Batch) error {
		for i := int64(1); i <= n; i++ {
			if _, err := h.le.StageGrant(b, i, 5); err != nil {
				return err
			}
			if err := h.le.Attach(b, i, fmt.Appendf(nil, "key-%d", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(6 * time.Second)
	for tickN := 0; tickN < 100; tickN++ {
		p.mu.Lock()
		done := p.revoked == n
		p.mu.Unlock()
		if done {
			break
		}
		tick <- time.Time{}
	}
	tick <- time.Time{} // the previous tick's work is finished once this is received
	cancel()
	<-done
	if p.revoked != n {
		t.Fatalf("revoked %d of %d", p.revoked, n)
	}
	ticks := 0
	for _, c := range p.perTick {
		if c > 500 {
			t.Fatalf("a tick revoked %d leases, want at most 500 (1000/s × 0.5 s)", c)
		}
		if c > 0 {
			ticks++
		}
	}
	if ticks < n/500 {
		t.Fatalf("revocations spread over %d ticks, want ≥ %d", ticks, n/500)
	}
	if p.maxFlight > maxPendingRevokes {
		t.Fatalf("%d revocations in flight, want ≤ %d", p.maxFlight, maxPendingRevokes)
	}
	if len(h.le.Leases()) != 0 {
		t.Fatalf("%d leases left", len(h.le.Leases()))
	}
}

func TestRunExpiryFollowsLeadershipAndCheckpoints(t *testing.T) {
	h := newHarness(t, Config{CheckpointInterval: time.Minute})
	p := &fakeProposer{h: h, perTick: []int{0}}
	h.grant(1, 600)
	tick := make(chan time.Time)
	lc := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.le.RunExpiry(ctx, tick, func() <-chan struct{} { return lc }, p)
	}()
	tick <- time.Time{}
	if h.le.IsPrimary() {
		t.Fatal("promoted while not leader")
	}
	p.mu.Lock()
	p.leader = true
	p.mu.Unlock()
	lc <- struct{}{} // a leader change wakes the loop without a tick
	tick <- time.Time{}
	if !h.le.IsPrimary() {
		t.Fatal("not promoted after becoming leader")
	}
	h.clock.Advance(61 * time.Second)
	tick <- time.Time{}
	tick <- time.Time{}
	p.mu.Lock()
	ncps := len(p.cps)
	p.leader = false
	p.mu.Unlock()
	// 600 s + 1 s promotion extension − 61 s.
	if ncps != 1 || p.cps[0].Checkpoints[0].Remaining_TTL != 540 {
		t.Fatalf("checkpoints proposed: %v", p.cps)
	}
	tick <- time.Time{}
	tick <- time.Time{}
	if h.le.IsPrimary() {
		t.Fatal("still primary after losing leadership")
	}
	cancel()
	<-done
}

// BenchmarkRenew measures keep-alives on the primary (the in-memory part of
// LeaseKeepAlive), from parallel streams over 10,000 leases.
func BenchmarkRenew(b *testing.B) {
	h := &harness{t: &testing.T{}, eng: memory.New(), clock: clock.NewFake()}
	defer h.eng.Close()
	le, err := New(Config{Engine: h.eng, Clock: h.clock, ElectionTimeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	h.le = le
	const n = 10_000
	if err := h.apply(func(bt storage.Batch) error {
		for i := int64(1); i <= n; i++ {
			if _, err := le.StageGrant(bt, i, 60); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	le.Promote(0)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int64(0)
		for pb.Next() {
			i++
			if _, err := le.Renew(ctx, i%n+1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
