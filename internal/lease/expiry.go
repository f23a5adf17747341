package lease

import (
	"context"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
)

// Proposer is what the expiry loop needs from the server: leadership, and
// proposing revocations and checkpoints through Raft.
type Proposer interface {
	// IsLeader reports whether this member currently leads.
	IsLeader() bool
	// LeaderReady returns once this member, as leader, has applied every
	// entry committed before it (a read barrier), so the lessor knows every
	// lease before it starts timing them.
	LeaderReady(ctx context.Context) error
	Revoke(ctx context.Context, id int64) error
	Checkpoint(ctx context.Context, r *pb.LeaseCheckpointRequest) error
}

// Expiry settings, as etcd's lessor and server use them.
const (
	// ExpiryInterval is how often the leader looks for expired leases.
	ExpiryInterval = 500 * time.Millisecond
	// maxPendingRevokes bounds the revocations in flight at once.
	maxPendingRevokes = 16
	// maxCheckpointBatch bounds the checkpoints in one Raft entry.
	maxCheckpointBatch = 1000
)

// RunExpiry times leases while this member leads, until ctx ends. At each
// tick it promotes or demotes the lessor to follow leadership, then proposes
// the revocation of the expired leases, at most RevokeRate × ExpiryInterval
// of them per tick and maxPendingRevokes at a time, and the due checkpoints.
// A tick's revocations finish before the next tick is read, so a burst of
// expiries (10,000 leases at once) trickles into Raft at the revoke rate
// instead of crowding out client writes. leaderChanged, when not nil, wakes
// the loop between ticks.
func (le *Lessor) RunExpiry(ctx context.Context, tick <-chan time.Time, leaderChanged func() <-chan struct{}, p Proposer) {
	perTick := max(int(float64(le.cfg.RevokeRate)*ExpiryInterval.Seconds()), 1)
	for {
		var lc <-chan struct{}
		if leaderChanged != nil {
			lc = leaderChanged()
		}
		le.followLeadership(ctx, p)
		if le.IsPrimary() {
			le.revoke(ctx, p, le.Expired(perTick))
			le.checkpoint(ctx, p)
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-tick:
			if !ok {
				return
			}
		case <-lc:
		}
	}
}

func (le *Lessor) followLeadership(ctx context.Context, p Proposer) {
	leader := p.IsLeader()
	switch {
	case leader && !le.IsPrimary():
		if err := p.LeaderReady(ctx); err != nil {
			le.lg.Debug("lease: leader not ready to time leases yet", zap.Error(err))
			return
		}
		if p.IsLeader() {
			le.Promote(le.cfg.ElectionTimeout)
		}
	case !leader && le.IsPrimary():
		le.Demote()
	}
}

func (le *Lessor) revoke(ctx context.Context, p Proposer, ids []int64) {
	if len(ids) == 0 {
		return
	}
	sem := make(chan struct{}, maxPendingRevokes)
	var wg sync.WaitGroup
	for _, id := range ids {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		if !p.IsLeader() {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := p.Revoke(ctx, id); err != nil {
				// Expired hands it out again after the retry interval.
				le.lg.Warn("lease: failed to revoke expired lease", zap.String("lease-id", leaseIDString(id)), zap.Error(err))
			}
		}()
	}
	wg.Wait()
}

func (le *Lessor) checkpoint(ctx context.Context, p Proposer) {
	// Bounded like etcd: at most rate/2 batches per tick.
	for range max(le.cfg.RevokeRate/2, 1) {
		cps := le.DueCheckpoints(maxCheckpointBatch)
		if len(cps) == 0 {
			return
		}
		if err := p.Checkpoint(ctx, &pb.LeaseCheckpointRequest{Checkpoints: cps}); err != nil {
			le.lg.Warn("lease: failed to checkpoint leases", zap.Int("count", len(cps)), zap.Error(err))
			return
		}
		if len(cps) < maxCheckpointBatch {
			return
		}
	}
}

func leaseIDString(id int64) string { return fmt.Sprintf("%016x", id) }
