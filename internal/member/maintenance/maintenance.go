package maintenance

import (
	"context"
	"fmt"
	"io"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/failpoint"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/rpc"
	"github.com/metastore/metastore/internal/snapshot"
	"github.com/metastore/metastore/internal/storage"
)

// Reporter answers this member's Status (internal/member/status).
type Reporter interface {
	Status(ctx context.Context) (rpc.MemberStatus, error)
}

// Hasher is the MVCC store's hashes.
type Hasher interface {
	Hash(ctx context.Context) (uint32, error)
	HashByRev(ctx context.Context, rev int64) (mvcc.HashResult, error)
}

// Proposer replicates a request and returns its applied result
// (internal/backend).
type Proposer interface {
	Propose(ctx context.Context, r *pb.InternalRaftRequest) (apply.Result, error)
}

// Mover moves leadership (internal/member/leadership).
type Mover interface {
	MoveLeader(ctx context.Context, target uint64) error
}

// Downgrader answers Downgrade (internal/downgrade).
type Downgrader interface {
	Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error)
}

// Compactor is the engine's whole-store compaction (storage.Engine).
type Compactor interface {
	CompactAll(ctx context.Context) error
	Usage() storage.Usage
}

// HealthSuspender is the gRPC health status (internal/lifecycle.Health).
type HealthSuspender interface {
	Suspend(reason string)
	Resume()
}

// Config wires a Backend.
type Config struct {
	Status     Reporter
	Store      Hasher
	Proposer   Proposer
	Leadership Mover
	Downgrade  Downgrader
	// Engine is snapshotted for Snapshot, whose file is written under
	// ScratchDir and removed when the stream is closed.
	Engine     snapshot.Snapshotter
	ScratchDir string
	// Compactor does Defragment's work.
	Compactor Compactor
	// StopServing, when set (--feature-gates=StopGRPCServiceOnDefrag=true),
	// reports NOT_SERVING for as long as a Defragment runs.
	StopServing HealthSuspender
	Logger      *zap.Logger
}

// Backend implements rpc.MaintenanceBackend and rpc.Downgrader.
type Backend struct {
	c Config
	// defragTurn holds a token while a Defragment runs: one at a time per
	// member, later callers wait for their turn, as etcd's do on its
	// backend's locks.
	defragTurn chan struct{}
}

// New returns a Backend.
func New(c Config) *Backend {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return &Backend{c: c, defragTurn: make(chan struct{}, 1)}
}

// MemberStatus implements rpc.MaintenanceBackend.
func (b *Backend) MemberStatus(ctx context.Context) (rpc.MemberStatus, error) {
	return b.c.Status.Status(ctx)
}

// Hash implements rpc.MaintenanceBackend.
func (b *Backend) Hash(ctx context.Context) (uint32, error) { return b.c.Store.Hash(ctx) }

// HashKV implements rpc.MaintenanceBackend.
func (b *Backend) HashKV(ctx context.Context, rev int64) (uint32, int64, int64, error) {
	h, err := b.c.Store.HashByRev(ctx, rev)
	if err != nil {
		return 0, 0, 0, err
	}
	return h.Hash, h.CompactRevision, h.HashRevision, nil
}

// Alarm implements rpc.MaintenanceBackend: every action goes through Raft,
// as in etcd, so alarms are identical on every member.
func (b *Backend) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	res, err := b.c.Proposer.Propose(ctx, &pb.InternalRaftRequest{Alarm: r})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	resp, ok := res.Resp.(*pb.AlarmResponse)
	if !ok {
		return nil, fmt.Errorf("maintenance: alarm applied as %T", res.Resp)
	}
	return resp, nil
}

// MoveLeader implements rpc.MaintenanceBackend.
func (b *Backend) MoveLeader(ctx context.Context, target uint64) error {
	return b.c.Leadership.MoveLeader(ctx, target)
}

// Snapshot implements rpc.MaintenanceBackend: a point-in-time copy of the
// engine written as an etcd backend file, so that etcdutl reads it (see
// internal/snapshot.Export). The file is removed when the stream is closed.
func (b *Backend) Snapshot(context.Context) (io.ReadCloser, int64, error) {
	r, size, err := snapshot.Export(b.c.Engine, b.c.ScratchDir)
	if err != nil {
		return nil, 0, fmt.Errorf("maintenance: %w", err)
	}
	b.c.Logger.Info("sending snapshot", zap.Int64("bytes", size))
	return r, size, nil
}

// defragHoldMax bounds how long the defragBeforeCopy failpoint may hold a
// Defragment (failpoint.Hold): longer than any test looks at a member.
const defragHoldMax = 2 * time.Minute

// Defragment implements rpc.MaintenanceBackend: a compaction of the whole
// engine (storage.Engine.CompactAll), which gives the space of deleted and
// compacted-away versions back to the file system. Unlike etcd's, which
// copies its bbolt file with reads and writes blocked, it runs online:
// requests are served meanwhile. Calls take turns; a caller that gives up
// while waiting for its turn gets its context's error, and once started the
// work runs to the end whatever the caller does, as in etcd.
func (b *Backend) Defragment(ctx context.Context) error {
	if b.c.Compactor == nil {
		return fmt.Errorf("maintenance: defragment: no engine configured")
	}
	select {
	case b.defragTurn <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("maintenance: defragment: waiting for the one under way: %w", ctx.Err())
	}
	defer func() { <-b.defragTurn }()
	if b.c.StopServing != nil {
		b.c.StopServing.Suspend("defrag is active")
		defer b.c.StopServing.Resume()
	}
	return compactAll(context.WithoutCancel(ctx), b.c.Compactor, b.c.Logger)
}

// compactAll compacts the whole store, logged with etcd's defragmentation
// messages and fields.
func compactAll(ctx context.Context, c Compactor, lg *zap.Logger) error {
	path := "memory"
	if d, ok := c.(interface{ Dir() string }); ok {
		path = d.Dir()
	}
	start := time.Now()
	before := c.Usage()
	lg.Info("defragmenting", zap.String("path", path),
		zap.Int64("current-db-size-bytes", before.SizeBytes),
		zap.Int64("current-db-size-in-use-bytes", before.LiveBytes))
	failpoint.Hold(failpoint.DefragBeforeCopy, defragHoldMax)
	if err := c.CompactAll(ctx); err != nil {
		lg.Warn("failed to defragment", zap.String("path", path), zap.Error(err))
		return fmt.Errorf("maintenance: defragment: %w", err)
	}
	after := c.Usage()
	lg.Info("finished defragmenting directory", zap.String("path", path),
		zap.Int64("current-db-size-bytes-diff", after.SizeBytes-before.SizeBytes),
		zap.Int64("current-db-size-bytes", after.SizeBytes),
		zap.Int64("current-db-size-in-use-bytes-diff", after.LiveBytes-before.LiveBytes),
		zap.Int64("current-db-size-in-use-bytes", after.LiveBytes),
		zap.Duration("took", time.Since(start)))
	return nil
}

// BootstrapDefrag is etcd's --bootstrap-defrag-threshold-megabytes: at start,
// before the member serves, the whole store is compacted when that would
// free at least thresholdMiB (its size minus the size in use, as Status
// reports them); otherwise it logs etcd's "Skipping defragmentation". A
// threshold of 0 does nothing.
func BootstrapDefrag(ctx context.Context, c Compactor, thresholdMiB uint, lg *zap.Logger) error {
	if thresholdMiB == 0 {
		return nil
	}
	u := c.Usage()
	threshold := int64(thresholdMiB) << 20
	if u.SizeBytes-u.LiveBytes < threshold {
		lg.Info("Skipping defragmentation",
			zap.Int64("current-db-size-bytes", u.SizeBytes),
			zap.Int64("current-db-size-in-use-bytes", u.LiveBytes),
			zap.Int64("bootstrap-defrag-threshold-bytes", threshold))
		return nil
	}
	return compactAll(ctx, c, lg)
}

// Downgrade implements rpc.Downgrader.
func (b *Backend) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	return b.c.Downgrade.Downgrade(ctx, r)
}
