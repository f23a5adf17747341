package bootstrap

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage"
)

// ForceNewCluster rewrites the raft log of an existing member so that it
// restarts as the only member of its cluster (--force-new-cluster): the
// recovery after a permanent loss of quorum. The data is kept; the other
// members are removed through committed conf changes that the applier
// applies before anything else, so they can never rejoin. On a fresh data
// dir it does nothing, as in etcd. It runs before raftlog.Open.
func ForceNewCluster(eng storage.Engine, dataDir string, lg *zap.Logger) error {
	if lg == nil {
		lg = zap.NewNop()
	}
	self, ok, err := membership.ReadLocalID(eng)
	if err != nil {
		return fmt.Errorf("bootstrap: --force-new-cluster: %w", err)
	}
	if !ok {
		lg.Info("--force-new-cluster has no effect on a new data dir", zap.String("data-dir", dataDir))
		return nil
	}
	applied, _, err := apply.ReadAppliedIndex(eng)
	if err != nil {
		return err
	}
	members, err := membership.Load(eng)
	if err != nil {
		return fmt.Errorf("bootstrap: load members: %w", err)
	}
	var promote []byte
	if m := members.Member(self); m != nil {
		promote = (&membership.ConfChangeContext{Member: *m, IsPromote: true}).Encode()
	}
	res, err := raftlog.RewriteStandalone(eng, self, applied, promote)
	if err != nil {
		return fmt.Errorf("bootstrap: --force-new-cluster: %w", err)
	}
	removed := make([]string, len(res.Removed))
	for i, id := range res.Removed {
		removed[i] = idHex(id)
	}
	lg.Warn("forcing a new one-member cluster from existing data (--force-new-cluster)",
		zap.String("member-id", idHex(self)),
		zap.Strings("removed-members", removed),
		zap.Bool("promoted-from-learner", res.Promoted),
		zap.Uint64("uncommitted-entries-dropped", res.Dropped),
		zap.Uint64("applied-index", applied),
		zap.Uint64("commit-index", res.Commit))
	return nil
}
