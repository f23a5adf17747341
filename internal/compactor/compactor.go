package compactor

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
)

// Target is what the compactor needs from the server.
type Target interface {
	// Rev is the current revision.
	Rev() int64
	// IsLeader reports whether this member leads (only the leader compacts).
	IsLeader() bool
	// Compact proposes a compaction at rev.
	Compact(ctx context.Context, rev int64) error
}

// Config configures Run. IsCompacted tells which Compact errors mean the
// revision was already compacted (a race with a manual compaction), which
// is not a failure.
type Config struct {
	Mode      string        // "periodic" or "revision"
	Period    time.Duration // periodic: how much history to keep
	Revisions int64         // revision: how many revisions to keep
	// Tick drives the compactor and tells the time: production passes a
	// ticker of Interval(), tests a channel of the times they choose.
	Tick        <-chan time.Time
	IsCompacted func(error) bool
	Logger      *zap.Logger
}

// revisionCheckInterval is how often revision mode looks, as etcd does.
const revisionCheckInterval = 5 * time.Minute

// Interval is how often Run should be ticked for cfg: a tenth of the
// retention period in periodic mode (so the kept window is accurate to 10 %),
// every 5 minutes in revision mode.
func Interval(mode string, period time.Duration) time.Duration {
	if mode == "periodic" {
		return max(period/10, time.Second)
	}
	return revisionCheckInterval
}

type sample struct {
	at  time.Time
	rev int64
}

// Run compacts until ctx ends.
func Run(ctx context.Context, cfg Config, t Target) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	var (
		samples []sample
		last    int64
	)
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-cfg.Tick:
		}
		rev := t.Rev()
		var target int64
		switch cfg.Mode {
		case "periodic":
			samples = append(samples, sample{now, rev})
			// The newest sample at least Period old marks the oldest
			// history to keep.
			cut := -1
			for i, s := range samples {
				if now.Sub(s.at) >= cfg.Period {
					cut = i
				}
			}
			if cut < 0 {
				continue
			}
			target = samples[cut].rev
			samples = samples[cut:]
		case "revision":
			target = rev - cfg.Revisions
		default:
			return
		}
		if target <= last || target <= 0 || !t.IsLeader() {
			continue
		}
		err := t.Compact(ctx, target)
		switch {
		case err == nil:
			last = target
			cfg.Logger.Info("auto compaction finished", zap.String("mode", cfg.Mode), zap.Int64("revision", target))
		case cfg.IsCompacted != nil && cfg.IsCompacted(err):
			last = target
		case errors.Is(err, context.Canceled):
			return
		default:
			cfg.Logger.Warn("auto compaction failed", zap.Int64("revision", target), zap.Error(err))
		}
	}
}
