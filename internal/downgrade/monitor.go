package downgrade

import (
	"context"
	"time"

	"github.com/coreos/go-semver/semver"
	"go.uber.org/zap"
)

// Cluster is what the downgrade monitor needs from the member.
type Cluster interface {
	IsLeader() bool
	State() (Info, error)
	// MemberVersions returns every member's server version; ok is false
	// when one cannot be learnt (a member down).
	MemberVersions(ctx context.Context) (versions map[uint64]string, ok bool)
	// Finish ends the downgrade through Raft.
	Finish(ctx context.Context) error
}

// Monitor is etcd's --downgrade-check-time loop: at each tick the leader,
// while a downgrade is enabled, asks every member its server version and
// ends the downgrade once all run the target major.minor. It returns when
// ctx ends.
func Monitor(ctx context.Context, tick <-chan time.Time, c Cluster, lg *zap.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		if !c.IsLeader() {
			continue
		}
		in, err := c.State()
		if err != nil || !in.Enabled {
			continue
		}
		target, err := semver.NewVersion(in.Target)
		if err != nil {
			continue
		}
		vers, ok := c.MemberVersions(ctx)
		if !ok || !allAt(vers, target) {
			continue
		}
		lg.Info("the cluster has been downgraded", zap.String("cluster-version", in.Target))
		if err := c.Finish(ctx); err != nil {
			lg.Warn("failed to cancel downgrade", zap.Error(err))
		}
	}
}

func allAt(vers map[uint64]string, target *semver.Version) bool {
	for _, v := range vers {
		sv, err := semver.NewVersion(v)
		if err != nil || sv.Major != target.Major || sv.Minor != target.Minor {
			return false
		}
	}
	return len(vers) > 0
}
