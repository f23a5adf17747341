package raftlog

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/metastore/metastore/internal/storage/pebble"
)

// logState renders what a Storage holds: the HardState and every entry.
func logState(t *testing.T, s *Storage) string {
	t.Helper()
	var b strings.Builder
	h := s.HardState()
	fmt.Fprintf(&b, "hs %d/%d;", h.GetTerm(), h.GetCommit())
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if last >= first {
		ents, err := s.Entries(first, last+1, 1<<62)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			fmt.Fprintf(&b, "%d:%d:%s,", e.GetIndex(), e.GetTerm(), e.Data)
		}
	}
	return b.String()
}

// TestCrashAtEverySyncedSave runs the Raft log on Pebble over the
// crash-cloning memory file system: appends, HardState updates, and leader
// changes that overwrite the uncommitted tail, some saved with sync and some
// without. After every synced Save it crashes (keeping none, half or all of
// the unsynced data) and reopens: the log opens (checksums and contiguity
// verified), and what it holds is exactly the state after one of the saves
// from the last synced one on, i.e. a replay of the log up to some point
// that loses nothing synced.
func TestCrashAtEverySyncedSave(t *testing.T) {
	seed := uint64(20261206) // fixed: the same crash points every run (a failure replays)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	fs := vfs.NewCrashableMem()
	popts := pebble.Options{FS: fs, CacheSize: 4 << 20, MemTableSize: 256 << 10}
	eng, err := pebble.Open("/db", popts)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	s := mustOpen(t, eng)

	var (
		states     []string // the state after each save
		lastSynced = -1     // index in states of the last synced save
		term       = uint64(1)
		commit     uint64
		last       uint64
		crashes    int
	)
	for i := range 120 {
		var ents []*raftpb.Entry
		from := last + 1
		if rng.IntN(8) == 0 && last > commit {
			// A new leader overwrites the uncommitted tail.
			term++
			from = commit + 1 + uint64(rng.IntN(int(last-commit)))
		}
		for j := range 1 + rng.IntN(4) {
			ents = append(ents, ent(from+uint64(j), term, strings.Repeat(fmt.Sprint(i%10), 100+rng.IntN(400))))
		}
		last = from + uint64(len(ents)) - 1
		if c := commit + uint64(rng.IntN(3)); c <= last && c > commit {
			commit = c
		}
		sync := rng.IntN(3) != 0
		if err := s.Save(hs(term, commit), ents, sync); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
		states = append(states, logState(t, s))
		if !sync {
			continue
		}
		lastSynced = len(states) - 1
		for _, keep := range []int{0, 50, 100} {
			clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: keep, RNG: rng})
			copts := popts
			copts.FS = clone
			ce, err := pebble.Open("/db", copts)
			if err != nil {
				t.Fatalf("crash after synced save %d keeping %d%% of unsynced data: reopen engine: %v", i, keep, err)
			}
			cs, err := Open(ce)
			if err != nil {
				t.Fatalf("crash after synced save %d keeping %d%%: reopen log: %v", i, keep, err)
			}
			got := logState(t, cs)
			found := false
			for _, st := range states[lastSynced:] {
				found = found || st == got
			}
			if !found {
				t.Fatalf("crash after synced save %d keeping %d%%: recovered\n%s\nwhich is no state from the last synced save on (%d saves); last synced:\n%s", i, keep, got, len(states), states[lastSynced])
			}
			if err := ce.Close(); err != nil {
				t.Fatal(err)
			}
			crashes++
		}
	}
	t.Logf("%d crashes after %d saves: every reopened log is a state from its last synced save on", crashes, len(states))
}
