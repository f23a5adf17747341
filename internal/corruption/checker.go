package corruption

import (
	"context"
	"errors"
	"slices"
	"time"

	"go.uber.org/zap"
)

// Hash is one member's HashKV answer.
type Hash struct {
	Hash            uint32
	CompactRevision int64
	HashRevision    int64
}

// Peer is another member to check.
type Peer struct {
	ID         uint64
	ClientURLs []string
	PeerURLs   []string
}

// Hasher is what comparing this member's data with its peers' needs.
type Hasher interface {
	// Self is this member's ID (the leader's, when it checks).
	Self() uint64
	Rev() int64
	Peers() []Peer
	LocalHash(ctx context.Context, rev int64) (Hash, error)
	PeerHash(ctx context.Context, p Peer, rev int64) (Hash, error)
}

// Target is what the leader's checks need from the server.
type Target interface {
	Hasher
	IsLeader() bool
	// RaiseCorrupt proposes the CORRUPT alarm for member id (0: the
	// divergent member cannot be named).
	RaiseCorrupt(ctx context.Context, id uint64) error
}

// ErrSkip, from PeerHash, means the peer cannot answer for that revision
// (compacted, not applied yet, unreachable): no verdict this round.
var ErrSkip = errors.New("corruption: peer cannot be compared this round")

// Check runs one round and returns the IDs of members found divergent.
func Check(ctx context.Context, t Target, lg *zap.Logger) []uint64 {
	if !t.IsLeader() {
		return nil
	}
	rev := t.Rev()
	local, err := t.LocalHash(ctx, rev)
	if err != nil {
		lg.Debug("corruption check: local hash unavailable", zap.Int64("revision", rev), zap.Error(err))
		return nil
	}
	peers := t.Peers()
	var answers []Answer
	for _, p := range peers {
		h, err := t.PeerHash(ctx, p, rev)
		if err != nil {
			lg.Debug("corruption check: peer skipped", zap.String("member-id", idHex(p.ID)), zap.Error(err))
			continue
		}
		answers = append(answers, Answer{ID: p.ID, Hash: h})
	}
	bad := Decide(t.Self(), local, len(peers), answers)
	for _, id := range bad {
		lg.Error("corruption check: member's data differs from the majority's",
			zap.String("member-id", idHex(id)), zap.String("leader-id", idHex(t.Self())),
			zap.Int64("revision", rev), zap.Uint32("leader-hash", local.Hash))
		if err := t.RaiseCorrupt(ctx, id); err != nil {
			lg.Error("corruption check: raising the CORRUPT alarm failed", zap.String("member-id", idHex(id)), zap.Error(err))
		}
	}
	return bad
}

// Answer is one peer's hash in a round.
type Answer struct {
	ID   uint64
	Hash Hash
}

// Decide names the divergent members of one round, as etcd's leader does:
// only hashes over the same window (hash revision and compact revision
// equal to the leader's) are compared, grouped by value with the leader's
// own; if a majority of all members (the leader and its peers)
// agree, every compared member outside that majority is divergent, the
// leader itself included. With no majority the divergent member cannot be
// named: once every member answered comparably that is reported as member
// 0 (the whole cluster, as etcd does); while some did not answer, it is no
// verdict this round (a departure from etcd, which raises 0 at once: a
// member that is catching up or unreachable for a moment must not stop the
// cluster, and the next round, with it, names the divergent member).
func Decide(self uint64, local Hash, peers int, answers []Answer) []uint64 {
	groups := map[uint32][]uint64{local.Hash: {self}}
	compared := 0
	for _, a := range answers {
		if a.Hash.HashRevision != local.HashRevision || a.Hash.CompactRevision != local.CompactRevision {
			continue
		}
		compared++
		groups[a.Hash.Hash] = append(groups[a.Hash.Hash], a.ID)
	}
	if len(groups) == 1 {
		return nil
	}
	quorum := (peers+1)/2 + 1
	majority, found := uint32(0), false
	for h, ids := range groups {
		if len(ids) >= quorum {
			majority, found = h, true
		}
	}
	if !found {
		if compared == peers {
			return []uint64{0}
		}
		return nil
	}
	var bad []uint64
	for h, ids := range groups {
		if h != majority {
			bad = append(bad, ids...)
		}
	}
	slices.Sort(bad)
	return bad
}

// Run checks on every tick until ctx ends.
func Run(ctx context.Context, tick <-chan time.Time, t Target, lg *zap.Logger) {
	every(ctx, tick, func(ctx context.Context) { Check(ctx, t, lg) })
}

// every runs one round per tick, each bounded to 30 s, until ctx ends.
func every(ctx context.Context, tick <-chan time.Time, round func(context.Context)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			round(cctx)
			cancel()
		}
	}
}

func idHex(id uint64) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 16)
	for i := 15; i >= 0; i-- {
		b[i] = digits[id&0xf]
		id >>= 4
	}
	return string(b)
}
