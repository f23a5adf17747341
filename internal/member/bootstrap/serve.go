package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/backend"
)

// LeaderWatcher is the raft node's view of the leader.
type LeaderWatcher interface {
	Leader() uint64
	// LeaderChanged returns a channel closed at the next leader change.
	LeaderChanged() <-chan struct{}
}

// ServeConfig wires AwaitServing.
type ServeConfig struct {
	Raft LeaderWatcher
	// Ready runs once a leader is known: a linearizable barrier, then
	// Publish. Its error ends a round.
	Ready func(ctx context.Context) error
	// Applied and SnapshotBytes tell whether a round made progress (the
	// applied index, the bytes of Raft snapshots received).
	Applied, SnapshotBytes func() uint64
	// Round bounds one round of the wait.
	Round time.Duration
	// Failed is closed when the member failed; Err then says why.
	Failed <-chan struct{}
	Err    func() error
	Logger *zap.Logger
}

// AwaitServing waits, in rounds of c.Round, until the member serves (a
// leader is known and Ready succeeded), fails, or ctx ends (a signal during
// start-up). Like etcd, it never gives up by itself: the client listeners
// are open meanwhile (and requests time out), and a member whose peers come
// up minutes later, or that catches up through a snapshot of many GiB,
// still joins them (ADR 12). Each round that ends without serving is
// logged, with whether it progressed.
func AwaitServing(ctx context.Context, c ServeConfig) error {
	lg := c.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	progress := func() [2]uint64 { return [2]uint64{c.Applied(), c.SnapshotBytes()} }
	for {
		before := progress()
		rctx, cancel := context.WithTimeout(ctx, c.Round)
		err := serveRound(rctx, c)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, backend.ErrTimeout) {
			return err
		}
		if progress() != before {
			lg.Info("still catching up with the cluster", zap.Uint64("applied-index", c.Applied()),
				zap.Uint64("snapshot-bytes-received", c.SnapshotBytes()))
			continue
		}
		lg.Warn("still waiting for the cluster to serve (no leader or no quorum yet)",
			zap.String("leader", fmt.Sprintf("%x", c.Raft.Leader())), zap.Error(err))
	}
}

func serveRound(ctx context.Context, c ServeConfig) error {
	for {
		// Take the channel before reading the leader, so a change between
		// the two still wakes the wait.
		changed := c.Raft.LeaderChanged()
		if c.Raft.Leader() != 0 {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Failed:
			return c.Err()
		}
	}
	return c.Ready(ctx)
}
