package maintenance

import (
	"context"
	"fmt"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/rpc"
	"github.com/metastore/metastore/internal/snapshot"
)

// Reporter answers this member's Status (internal/member/status).
type Reporter interface {
	Status(ctx context.Context) (rpc.MemberStatus, error)
}

// Hasher is the MVCC store's hashes.
type Hasher interface {
	Hash() (uint32, error)
	HashByRev(rev int64) (mvcc.HashResult, error)
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
	Logger     *zap.Logger
}

// Backend implements rpc.MaintenanceBackend and rpc.Downgrader.
type Backend struct{ c Config }

// New returns a Backend.
func New(c Config) *Backend {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return &Backend{c}
}

// MemberStatus implements rpc.MaintenanceBackend.
func (b *Backend) MemberStatus(ctx context.Context) (rpc.MemberStatus, error) {
	return b.c.Status.Status(ctx)
}

// Hash implements rpc.MaintenanceBackend.
func (b *Backend) Hash(context.Context) (uint32, error) { return b.c.Store.Hash() }

// HashKV implements rpc.MaintenanceBackend.
func (b *Backend) HashKV(_ context.Context, rev int64) (uint32, int64, int64, error) {
	h, err := b.c.Store.HashByRev(rev)
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

// Downgrade implements rpc.Downgrader.
func (b *Backend) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	return b.c.Downgrade.Downgrade(ctx, r)
}
