package server

import (
	"context"
	"math"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/migrate"
	"github.com/metastore/metastore/internal/rpc"
)

// migrationOptions installs the guard of an online migration from etcd
// (internal/migrate): a member restored with --migrate-token refuses client
// writes until `metastore migrate cutover`. A marker that cannot be read
// fails safe: every write is refused, with the reason.
func (s *Server) migrationOptions() []grpc.ServerOption {
	g, err := migrate.NewGuard(s.cfg.Member.DataDir)
	if err != nil {
		s.lg.Error("cannot read the migration marker; refusing every write", zap.Error(err))
		refuse := status.Error(codes.FailedPrecondition, err.Error())
		return []grpc.ServerOption{grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if migrate.IsWrite(info.FullMethod, req) {
				return nil, refuse
			}
			return h(ctx, req)
		})}
	}
	if g.Migrating() {
		s.lg.Warn("migration from etcd in progress: client writes are refused until `metastore migrate cutover`")
		// The same KV service, but with no bound on the ops of one txn.
		kv := rpc.NewKVServer(s.backend, s, math.MaxInt32, func(string) {})
		g.FollowerTxn = kv.Txn
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(g.Unary)}
}
