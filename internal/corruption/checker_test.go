package corruption

import (
	"context"
	"testing"

	"go.uber.org/zap"
)

type fake struct {
	leader bool
	local  Hash
	peers  map[uint64]Hash
	skip   map[uint64]bool
	raised []uint64
}

func (f *fake) IsLeader() bool { return f.leader }
func (f *fake) Rev() int64     { return 10 }
func (f *fake) Peers() []Peer {
	var out []Peer
	for id := range f.peers {
		out = append(out, Peer{ID: id})
	}
	return out
}
func (f *fake) LocalHash(int64) (Hash, error) { return f.local, nil }
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
	f := &fake{leader: true, local: same, peers: map[uint64]Hash{
		2: same,
		3: {Hash: 99, CompactRevision: 3, HashRevision: 10}, // diverged
		4: {Hash: 98, CompactRevision: 5, HashRevision: 10}, // other window: not comparable
		5: {Hash: 97, CompactRevision: 3, HashRevision: 10}, // unreachable this round
	}, skip: map[uint64]bool{5: true}}
	bad := Check(context.Background(), f, zap.NewNop())
	if len(bad) != 1 || bad[0] != 3 || len(f.raised) != 1 || f.raised[0] != 3 {
		t.Fatalf("divergent = %v, raised = %v; want only member 3", bad, f.raised)
	}
}

func TestOnlyTheLeaderChecks(t *testing.T) {
	f := &fake{leader: false, local: Hash{Hash: 1}, peers: map[uint64]Hash{2: {Hash: 2}}}
	if bad := Check(context.Background(), f, zap.NewNop()); bad != nil || f.raised != nil {
		t.Fatalf("a follower raised %v", f.raised)
	}
}
