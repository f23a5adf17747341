package corruption

import (
	"context"
	"errors"
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
}

// Target is what the checker needs from the server.
type Target interface {
	IsLeader() bool
	Rev() int64
	Peers() []Peer
	LocalHash(rev int64) (Hash, error)
	PeerHash(ctx context.Context, p Peer, rev int64) (Hash, error)
	// RaiseCorrupt proposes the CORRUPT alarm for member id.
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
	local, err := t.LocalHash(rev)
	if err != nil {
		lg.Debug("corruption check: local hash unavailable", zap.Int64("revision", rev), zap.Error(err))
		return nil
	}
	var differ []uint64
	self := selfID(t)
	byHash := map[uint32][]uint64{local.Hash: {self}}
	members := len(t.Peers()) + 1
	for _, p := range t.Peers() {
		h, err := t.PeerHash(ctx, p, rev)
		if err != nil {
			lg.Debug("corruption check: peer skipped", zap.String("member-id", idHex(p.ID)), zap.Error(err))
			continue
		}
		// Hashes are comparable only over the same history window.
		if h.HashRevision != local.HashRevision || h.CompactRevision != local.CompactRevision {
			continue
		}
		byHash[h.Hash] = append(byHash[h.Hash], p.ID)
		if h.Hash != local.Hash {
			lg.Error("corruption check: member's data differs from the leader's",
				zap.String("member-id", idHex(p.ID)), zap.Int64("revision", rev),
				zap.Uint32("leader-hash", local.Hash), zap.Uint32("member-hash", h.Hash))
			differ = append(differ, p.ID)
		}
	}
	bad := differ
	// When a majority of all members agree, the members outside it are
	// the divergent ones, the leader included: a damaged member that
	// became leader must not get its healthy peers flagged.
	if len(differ) > 0 {
		for majority, ids := range byHash {
			if len(ids) < members/2+1 {
				continue
			}
			bad = nil
			for h, others := range byHash {
				if h != majority {
					bad = append(bad, others...)
				}
			}
			break
		}
	}
	for _, id := range bad {
		if err := t.RaiseCorrupt(ctx, id); err != nil {
			lg.Error("corruption check: raising the CORRUPT alarm failed", zap.String("member-id", idHex(id)), zap.Error(err))
		}
	}
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

// selfID is the checking member's ID, when the target can tell it.
func selfID(t Target) uint64 {
	if m, ok := t.(interface{ MemberID() uint64 }); ok {
		return m.MemberID()
	}
	return 0
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
