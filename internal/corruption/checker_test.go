package corruption

import (
	"context"
	"slices"
	"testing"

	"go.uber.org/zap"
)

type fake struct {
	leader bool
	self   uint64
	local  Hash
	peers  map[uint64]Hash
	skip   map[uint64]bool
	raised []uint64
}

func (f *fake) IsLeader() bool { return f.leader }
func (f *fake) Self() uint64   { return f.self }
func (f *fake) Rev() int64     { return 10 }
func (f *fake) Peers() []Peer {
	var out []Peer
	for id := range f.peers {
		out = append(out, Peer{ID: id})
	}
	return out
}
func (f *fake) LocalHash(context.Context, int64) (Hash, error) { return f.local, nil }
func (f *fake) PeerHash(_ context.Context, p Peer, _ int64) (Hash, error) {
	if f.skip[p.ID] {
		return Hash{}, ErrSkip
	}
	return f.peers[p.ID], nil
}
func (f *fake) RaiseCorrupt(_ context.Context, id uint64) error {
	f.raised = append(f.raised, id)
	return nil
}

func TestDivergentMemberRaisesAlarm(t *testing.T) {
	same := Hash{Hash: 1, CompactRevision: 3, HashRevision: 10}
	f := &fake{leader: true, self: 1, local: same, peers: map[uint64]Hash{
		2: same,
		3: {Hash: 99, CompactRevision: 3, HashRevision: 10}, // diverged
		4: {Hash: 98, CompactRevision: 5, HashRevision: 10}, // other window: not comparable
		5: {Hash: 97, CompactRevision: 3, HashRevision: 10}, // unreachable this round
	}, skip: map[uint64]bool{5: true}}
	bad := Check(context.Background(), f, zap.NewNop())
	// 1, 2 agree but are not a majority of 5: no verdict yet.
	if len(bad) != 0 || len(f.raised) != 0 {
		t.Fatalf("divergent = %v, raised = %v; want no verdict without a majority", bad, f.raised)
	}
	f.peers[4] = same
	bad = Check(context.Background(), f, zap.NewNop())
	if !slices.Equal(bad, []uint64{3}) || !slices.Equal(f.raised, []uint64{3}) {
		t.Fatalf("divergent = %v, raised = %v; want only member 3", bad, f.raised)
	}
}

// TestDivergentLeaderRaisesAlarmForItself is the case the e2e test once
// saw go wrong: the damaged member had become leader, and the old check,
// taking the leader's hash as the truth, raised CORRUPT for both healthy
// followers instead of for the leader.
func TestDivergentLeaderRaisesAlarmForItself(t *testing.T) {
	good := Hash{Hash: 7, CompactRevision: 1, HashRevision: 4}
	f := &fake{leader: true, self: 3, local: Hash{Hash: 8, CompactRevision: 1, HashRevision: 4},
		peers: map[uint64]Hash{1: good, 2: good}}
	bad := Check(context.Background(), f, zap.NewNop())
	if !slices.Equal(bad, []uint64{3}) || !slices.Equal(f.raised, []uint64{3}) {
		t.Fatalf("divergent = %v, raised = %v; want the leader 3 only", bad, f.raised)
	}
}

func TestDecide(t *testing.T) {
	h := func(hash uint32, compact, rev int64) Hash {
		return Hash{Hash: hash, CompactRevision: compact, HashRevision: rev}
	}
	local := h(1, 2, 10)
	for _, tc := range []struct {
		name    string
		peers   int
		answers []Answer
		want    []uint64
	}{
		{"all agree", 2, []Answer{{2, local}, {3, local}}, nil},
		{"follower diverged", 2, []Answer{{2, local}, {3, h(9, 2, 10)}}, []uint64{3}},
		{"two followers diverged differently", 4, []Answer{{2, local}, {3, local}, {4, h(9, 2, 10)}, {5, h(8, 2, 10)}}, []uint64{4, 5}},
		{"leader diverged", 2, []Answer{{2, h(9, 2, 10)}, {3, h(9, 2, 10)}}, []uint64{1}},
		{"leader and a follower diverged", 4, []Answer{{2, h(9, 2, 10)}, {3, h(9, 2, 10)}, {4, h(9, 2, 10)}, {5, h(8, 2, 10)}}, []uint64{1, 5}},
		{"other compact revision not compared", 2, []Answer{{2, local}, {3, h(9, 5, 10)}}, nil},
		{"other hash revision not compared", 2, []Answer{{2, local}, {3, h(9, 2, 11)}}, nil},
		{"one peer answered, disagreeing: no majority yet", 2, []Answer{{2, h(9, 2, 10)}}, nil},
		{"every member answered, no majority: whole cluster", 2, []Answer{{2, h(9, 2, 10)}, {3, h(8, 2, 10)}}, []uint64{0}},
		{"two-member cluster disagreeing: whole cluster", 1, []Answer{{2, h(9, 2, 10)}}, []uint64{0}},
		{"single member", 0, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(1, local, tc.peers, tc.answers); !slices.Equal(got, tc.want) {
				t.Fatalf("Decide = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOnlyTheLeaderChecks(t *testing.T) {
	f := &fake{leader: false, local: Hash{Hash: 1}, peers: map[uint64]Hash{2: {Hash: 2}}}
	if bad := Check(context.Background(), f, zap.NewNop()); bad != nil || f.raised != nil {
		t.Fatalf("a follower raised %v", f.raised)
	}
}
