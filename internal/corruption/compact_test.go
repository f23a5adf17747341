package corruption

import (
	"context"
	"slices"
	"testing"

	"go.uber.org/zap"
)

type compactFake struct {
	fake
	compactRev int64
}

func (f *compactFake) CompactRev() int64 { return f.compactRev }

func TestCompactHashCheck(t *testing.T) {
	at := func(h uint32) Hash { return Hash{Hash: h, CompactRevision: 7, HashRevision: 7} }
	for _, tc := range []struct {
		name   string
		local  Hash
		peers  map[uint64]Hash
		skip   map[uint64]bool
		raised []uint64
		again  bool // the revision is checked again next round
	}{
		{"all agree", at(1), map[uint64]Hash{2: at(1), 3: at(1)}, nil, nil, false},
		{"one follower differs", at(1), map[uint64]Hash{2: at(1), 3: at(9)}, nil, []uint64{3}, false},
		{"the leader differs", at(9), map[uint64]Hash{2: at(1), 3: at(1)}, nil, []uint64{1}, false},
		{"no majority", at(1), map[uint64]Hash{2: at(2), 3: at(3), 4: at(4)}, nil, []uint64{0}, false},
		{"a peer unreachable", at(1), map[uint64]Hash{2: at(1), 3: at(1)}, map[uint64]bool{3: true}, nil, true},
		{"a peer compacted elsewhere", at(1), map[uint64]Hash{2: at(1), 3: {Hash: 1, CompactRevision: 9, HashRevision: 7}}, nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &compactFake{fake: fake{self: 1, leader: true, local: tc.local, peers: tc.peers, skip: tc.skip}, compactRev: 7}
			c := NewCompactChecker(f, zap.NewNop())
			got := c.Check(context.Background())
			slices.Sort(got)
			if !slices.Equal(got, tc.raised) || !slices.Equal(f.raised, got) {
				t.Fatalf("raised %v (alarms %v), want %v", got, f.raised, tc.raised)
			}
			// A final verdict (agreement of all, or alarms) is not repeated;
			// a round that could not compare every peer is.
			if done := c.lastChecked == 7; done == tc.again {
				t.Fatalf("last checked revision %d; want revision 7 checked again: %v", c.lastChecked, tc.again)
			}
			again := c.Check(context.Background())
			if !tc.again && (again != nil || len(f.raised) != len(tc.raised)) {
				t.Fatalf("revision 7 checked again after a final verdict: raised %v", f.raised)
			}
		})
	}
}

func TestCompactHashCheckWaitsForACompaction(t *testing.T) {
	f := &compactFake{fake: fake{self: 1, leader: true, local: Hash{Hash: 1}, peers: map[uint64]Hash{2: {Hash: 2}}}}
	if got := NewCompactChecker(f, zap.NewNop()).Check(context.Background()); got != nil {
		t.Fatalf("raised %v before any compaction", got)
	}
	f.leader, f.compactRev = false, 5
	if got := NewCompactChecker(f, zap.NewNop()).Check(context.Background()); got != nil {
		t.Fatalf("a follower raised %v", got)
	}
}

// TestDamagedLeaderIsTheOneFlagged: when the checking leader is the one
// whose data diverged, the periodic check flags it, not its healthy peers.
func TestDamagedLeaderIsTheOneFlagged(t *testing.T) {
	good := Hash{Hash: 1, CompactRevision: 3, HashRevision: 10}
	f := &compactFake{fake: fake{self: 1, leader: true, local: Hash{Hash: 9, CompactRevision: 3, HashRevision: 10},
		peers: map[uint64]Hash{2: good, 3: good}}}
	bad := Check(context.Background(), f, zap.NewNop())
	if !slices.Equal(bad, []uint64{1}) || !slices.Equal(f.raised, []uint64{1}) {
		t.Fatalf("flagged %v (alarms %v), want the leader (1) only", bad, f.raised)
	}
}
