package corruption

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// InitialCheck is etcd's InitialCorruptCheck (--feature-gates
// InitialCorruptCheck=true): before a member that already holds data
// serves anything, it compares its HashKV at its current revision with
// each peer's hash at that revision. A peer whose hash differs over the
// same compacted window (equal compact revisions) is a mismatch, and any
// mismatch fails the start with etcd's "<member-id> found data
// inconsistency with peers". A peer that cannot be compared (unreachable,
// behind the revision, compacted past it, of another cluster, or over
// another compacted window) is logged and skipped, as etcd does.
//
// Unlike the periodic check (Decide), no majority is sought: the member
// only decides whether it may start, and any disagreement means the data
// must be looked at before it serves, whichever side is damaged. timeout
// bounds each peer's answer (etcd uses its request timeout).
func InitialCheck(ctx context.Context, h Hasher, timeout time.Duration, lg *zap.Logger) error {
	self := strconv.FormatUint(h.Self(), 16)
	lg.Info("starting initial corruption check", zap.String("local-member-id", self), zap.Duration("timeout", timeout))
	rev := h.Rev()
	local, err := h.LocalHash(ctx, rev)
	if err != nil {
		return fmt.Errorf("%s failed to fetch hash (%w)", self, err)
	}
	mismatch := 0
	for _, p := range h.Peers() {
		if len(p.PeerURLs) == 0 {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		ph, err := h.PeerHash(pctx, p, rev)
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("%s initial corruption check: %w", self, ctx.Err())
		}
		fields := []zap.Field{
			zap.String("local-member-id", self),
			zap.Int64("local-member-revision", rev),
			zap.Int64("local-member-compact-revision", local.CompactRevision),
			zap.Uint32("local-member-hash", local.Hash),
			zap.String("remote-peer-id", strconv.FormatUint(p.ID, 16)),
			zap.Strings("remote-peer-endpoints", p.PeerURLs),
		}
		if err != nil {
			switch {
			case errors.Is(err, ErrPeerBehind):
				lg.Warn("cannot fetch hash from slow remote peer", append(fields, zap.Error(err))...)
			case errors.Is(err, ErrPeerCompacted):
				lg.Warn("cannot fetch hash from remote peer; local member is behind", append(fields, zap.Error(err))...)
			case errors.Is(err, ErrClusterIDMismatch):
				lg.Warn("cluster ID mismatch", append(fields, zap.Error(err))...)
			default:
				lg.Warn("cannot fetch hash from remote peer; skipping it", append(fields, zap.Error(err))...)
			}
			continue
		}
		fields = append(fields,
			zap.Int64("remote-peer-hash-revision", ph.HashRevision),
			zap.Int64("remote-peer-compact-revision", ph.CompactRevision),
			zap.Uint32("remote-peer-hash", ph.Hash))
		switch {
		case ph.HashRevision != local.HashRevision:
			// Not the revision asked for: nothing to compare.
			lg.Warn("found different hash revision values from remote peer", fields...)
		case ph.Hash == local.Hash:
		case ph.CompactRevision == local.CompactRevision:
			lg.Warn("found different hash values from remote peer", fields...)
			mismatch++
		default:
			lg.Warn("found different compact revision values from remote peer", fields...)
		}
	}
	if mismatch > 0 {
		return fmt.Errorf("%s found data inconsistency with peers", self)
	}
	lg.Info("initial corruption checking passed; no corruption", zap.String("local-member-id", self))
	return nil
}
