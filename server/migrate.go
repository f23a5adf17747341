package server

import (
	"context"
	"math"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/migrate"
	"github.com/metastore/metastore/internal/migrate/mode"
	"github.com/metastore/metastore/internal/rpc"
)

// migrationOptions installs the guard of an online migration from etcd
// (internal/migrate): while the replicated migration state (written by
// `metastore snapshot restore --migrate-token`) is set, client writes are
// refused until `metastore migrate cutover` clears it through Raft. A state
// that cannot be read fails safe: the write is refused, with the reason.
func (s *Server) migrationOptions() []grpc.ServerOption {
	g := migrate.NewGuard(func() (*mode.Marker, bool, error) { return mode.Load(s.eng) },
		func(ctx context.Context, token string) error {
			res, err := s.backend.Propose(ctx, mode.EndRequest(token))
			if err != nil {
				if _, ok := status.FromError(err); ok {
					return err
				}
				return status.Error(codes.Unavailable, "metastore: migration cut-over: "+err.Error())
			}
			return res.Err
		})
	// Warn only for a migration that is really under way: a member that has
	// applied nothing yet (a first start) refuses writes only until it has
	// the cluster's state, which is no reason to alarm an operator.
	switch m, _, err := mode.Load(s.eng); {
	case err != nil:
		s.lg.Warn("cannot read the migration state; client writes are refused", zap.Error(err))
	case m != nil:
		s.lg.Warn("migration from etcd in progress: client writes are refused until `metastore migrate cutover`")
	}
	// The same KV service, but with no bound on the ops of one txn.
	kv := rpc.NewKVServer(s.backend, s, math.MaxInt32, func(string) {})
	g.FollowerTxn = kv.Txn
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(g.Unary)}
}
