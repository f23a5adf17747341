package e2e

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ackLog records every write the server acknowledged.
type ackLog struct {
	mu     sync.Mutex
	revs   map[string]int64 // key -> mod revision in the put response
	maxRev int64
	errs   []error // ordering violations seen by writers
}

func (a *ackLog) add(key string, rev, prevRev int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if rev <= prevRev {
		a.errs = append(a.errs, fmt.Errorf("put %s acknowledged at revision %d after this writer's %d: revision went backwards", key, rev, prevRev))
	}
	a.revs[key] = rev
	a.maxRev = max(a.maxRev, rev)
}

func (a *ackLog) snapshot() (map[string]int64, int64, []error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	revs := make(map[string]int64, len(a.revs))
	for k, v := range a.revs {
		revs[k] = v
	}
	return revs, a.maxRev, append([]error(nil), a.errs...)
}

// TestCrashDurability kill -9s the server at random moments while writers
// put unique keys, and checks after each restart that every acknowledged
// write survived with its revision, that revisions never go backwards, and
// that HashKV of the last acknowledged revision is unchanged.
func TestCrashDurability(t *testing.T) {
	crashDurability(t, 4, 4)
}

// TestCrashDurabilityWhileGathering is TestCrashDurability with enough
// writers for the leader to gather proposals after its synced saves (ADR
// 27) and a long --raft-gather-window, so that kills land while proposals
// were taken but not yet saved: none of those was acknowledged, and every
// acknowledged one survives.
func TestCrashDurabilityWhileGathering(t *testing.T) {
	crashDurability(t, 48, 3, "--raft-gather-window=20ms")
}

func crashDurability(t *testing.T, writers, kills int, args ...string) {
	m, c, ctx := setup(t, args...)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))

	ws := startWriters(t, ctx, c, "crash/", writers)
	acks := ws.acks
	defer ws.Stop()
	waitAcks := func(n int) { t.Helper(); ws.waitAcks(t, n, 20*time.Second) }

	verify := func(round int, hashRev int64, hash uint32) {
		t.Helper()
		revs, maxRev, errs := acks.snapshot()
		if len(errs) > 0 {
			t.Fatalf("round %d: %v", round, errs)
		}
		got, err := c.Get(ctx, "crash/", clientv3.WithPrefix())
		check(t, "get after restart", err)
		if got.Header.Revision < maxRev {
			t.Fatalf("round %d: revision %d after restart < acknowledged %d", round, got.Header.Revision, maxRev)
		}
		present := make(map[string]int64, len(got.Kvs))
		for _, kv := range got.Kvs {
			present[string(kv.Key)] = kv.ModRevision
		}
		for k, rev := range revs {
			if p, ok := present[k]; !ok || p != rev {
				t.Fatalf("round %d: acknowledged %s at revision %d, after restart: present=%v revision %d", round, k, rev, ok, p)
			}
		}
		h, err := c.HashKV(ctx, m.ClientURL, hashRev)
		check(t, "hashkv after restart", err)
		if h.Hash != hash {
			t.Fatalf("round %d: HashKV(%d) = %d after restart, %d before kill", round, hashRev, h.Hash, hash)
		}
		t.Logf("round %d: %d acknowledged writes intact, revision %d, HashKV(%d) unchanged", round, len(revs), got.Header.Revision, hashRev)
	}

	for round := 1; round <= kills; round++ {
		waitAcks(20)
		// A random moment within the write stream.
		<-time.After(time.Duration(rng.IntN(300)) * time.Millisecond)
		_, lastRev, _ := acks.snapshot()
		h, err := c.HashKV(ctx, m.ClientURL, lastRev)
		check(t, "hashkv before kill", err)
		m.Kill9()
		m.StartAgain()
		verify(round, lastRev, h.Hash)
	}
}
