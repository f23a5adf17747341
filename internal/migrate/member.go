package migrate

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/migrate/mode"
	"github.com/metastore/metastore/internal/storage"
)

// Proposer replicates a request and returns its applied result
// (internal/backend).
type Proposer interface {
	Propose(ctx context.Context, r *pb.InternalRaftRequest) (apply.Result, error)
}

// NewMemberGuard returns the guard of one member: the migration state is
// read from state (the member's engine), and the cut-over is proposed
// through p, answering with the applied request's outcome. A proposal that
// failed without a gRPC status (the member stopping, say) is Unavailable,
// so the operator retries. It warns at once when a migration is under way
// or its state cannot be read (writes are refused either way); a member
// that has applied nothing yet (a first start) refuses writes only until
// it has the cluster's state, which is no reason to alarm an operator.
func NewMemberGuard(state storage.Reader, p Proposer, lg *zap.Logger) *Guard {
	load := func() (*mode.Marker, bool, error) { return mode.Load(state) }
	end := func(ctx context.Context, token string) error {
		res, err := p.Propose(ctx, mode.EndRequest(token))
		if err != nil {
			if _, ok := status.FromError(err); ok {
				return err
			}
			return status.Error(codes.Unavailable, "metastore: migration cut-over: "+err.Error())
		}
		return res.Err
	}
	switch m, _, err := load(); {
	case err != nil:
		lg.Warn("cannot read the migration state; client writes are refused", zap.Error(err))
	case m != nil:
		lg.Warn("migration from etcd in progress: client writes are refused until `metastore migrate cutover`")
	}
	return NewGuard(load, end)
}
