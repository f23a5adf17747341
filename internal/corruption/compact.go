package corruption

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// CompactTarget is what the compaction hash check needs besides Target.
type CompactTarget interface {
	Target
	// CompactRev is the revision of the last compaction.
	CompactRev() int64
}

// CompactChecker is etcd's CompactHashCheck (--feature-gates
// CompactHashCheck=true, every --compact-hash-check-time): the leader
// compares every member's hash of the key space at the latest compaction
// revision, where all members hold the same history, and raises CORRUPT
// for the members that disagree with a majority (for member 0, the whole
// cluster, when no majority agrees). A revision is checked until every
// member could be compared at it.
type CompactChecker struct {
	t  CompactTarget
	lg *zap.Logger

	lastChecked int64 // the Run goroutine only
}

// NewCompactChecker returns a checker that has checked nothing yet.
func NewCompactChecker(t CompactTarget, lg *zap.Logger) *CompactChecker {
	return &CompactChecker{t: t, lg: lg}
}

// Run checks on every tick until ctx ends.
func (c *CompactChecker) Run(ctx context.Context, tick <-chan time.Time) {
	every(ctx, tick, func(ctx context.Context) { c.Check(ctx) })
}

// Check runs one round and returns the members it raised CORRUPT for.
func (c *CompactChecker) Check(ctx context.Context) []uint64 {
	if !c.t.IsLeader() {
		return nil
	}
	rev := c.t.CompactRev()
	if rev <= 0 || rev <= c.lastChecked {
		return nil
	}
	leader := c.t.Self()
	c.lg.Info("starting compact hash check", zap.String("local-member-id", idHex(leader)))
	local, err := c.t.LocalHash(ctx, rev)
	if err != nil {
		// Compacted again meanwhile: the next round takes the new revision.
		c.lg.Info("finished compaction hash check", zap.Int("number-of-hashes-checked", 0), zap.Error(err))
		return nil
	}
	peers := c.t.Peers()
	byHash := map[uint32][]uint64{local.Hash: {leader}}
	checked := 0
	for _, p := range peers {
		h, err := c.t.PeerHash(ctx, p, rev)
		reason := ""
		switch {
		case err != nil:
			reason = "no response"
		case h.CompactRevision != local.CompactRevision:
			reason = fmt.Sprintf("the peer's CompactRevision %d doesn't match leader's CompactRevision %d", h.CompactRevision, local.CompactRevision)
		}
		if reason != "" {
			c.lg.Warn("Skipped peer's hash", zap.Int("number-of-peers", len(peers)), zap.String("leader-id", idHex(leader)),
				zap.String("peer-id", idHex(p.ID)), zap.String("reason", reason))
			continue
		}
		checked++
		byHash[h.Hash] = append(byHash[h.Hash], p.ID)
	}
	defer c.lg.Info("finished compaction hash check", zap.Int("number-of-hashes-checked", 1))
	if len(byHash) == 1 {
		if checked < len(peers) {
			c.lg.Warn("skipped revision in compaction hash check; was not able to check all peers",
				zap.Int("number-of-peers-checked", checked), zap.Int("number-of-peers", len(peers)),
				zap.Int64("revision", rev), zap.Int64("compactRevision", local.CompactRevision))
			return nil
		}
		c.lg.Info("successfully checked hash on whole cluster", zap.Int("number-of-peers-checked", checked),
			zap.Int64("revision", rev), zap.Int64("compactRevision", local.CompactRevision))
		c.lastChecked = rev
		return nil
	}
	c.lastChecked = rev
	return c.mismatch(ctx, byHash, len(peers)+1, leader, rev, local)
}

// mismatch raises CORRUPT for every member outside the majority, or for
// member 0 when no hash has a majority, logging each group as etcd does.
func (c *CompactChecker) mismatch(ctx context.Context, byHash map[uint32][]uint64, members int, leader uint64, rev int64, local Hash) []uint64 {
	quorum := false
	for h, ids := range byHash {
		if len(ids) >= members/2+1 {
			quorum = true
			delete(byHash, h)
			break
		}
	}
	var raised []uint64
	if !quorum {
		c.lg.Error("Detected compaction hash mismatch but cannot identify the corrupted members, so intentionally set the memberID as 0",
			zap.String("leader-id", idHex(leader)), zap.Int64("leader-revision", rev),
			zap.Int64("leader-compact-revision", local.CompactRevision), zap.Uint32("leader-hash", local.Hash))
		raised = append(raised, 0)
	}
	for h, ids := range byHash {
		if quorum {
			raised = append(raised, ids...)
		}
		peerIDs := make([]string, len(ids))
		for i, id := range ids {
			peerIDs[i] = idHex(id)
		}
		c.lg.Error("Detected compaction hash mismatch", zap.String("leader-id", idHex(leader)),
			zap.Int64("leader-revision", rev), zap.Int64("leader-compact-revision", local.CompactRevision),
			zap.Uint32("leader-hash", local.Hash), zap.Uint32("peer-hash", h), zap.Strings("peer-ids", peerIDs),
			zap.Bool("quorum-exist", quorum))
	}
	for _, id := range raised {
		if err := c.t.RaiseCorrupt(ctx, id); err != nil {
			c.lg.Error("compaction hash check: raising the CORRUPT alarm failed", zap.String("member-id", idHex(id)), zap.Error(err))
		}
	}
	return raised
}
