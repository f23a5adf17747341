package server

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/rpc"
)

// openAuth loads the auth store with the token provider --auth-token names.
func (s *Server) openAuth() error {
	a := s.cfg.Auth
	tp, err := auth.NewTokenProvider(a.Token, a.TokenTTL)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	st, err := auth.Open(s.eng, auth.Options{Tokens: tp, BcryptCost: a.BcryptCost})
	if err != nil {
		return fmt.Errorf("server: load auth: %w", err)
	}
	s.auth = st
	return nil
}

// authInterceptors fills the middleware chain's auth slot.
func (s *Server) authInterceptors() {
	var leases func() []int64
	if s.lessor != nil {
		leases = func() []int64 {
			ls := s.lessor.Leases()
			out := make([]int64, len(ls))
			for i, l := range ls {
				out[i] = l.ID
			}
			return out
		}
	}
	cfg := rpc.AuthConfig{Store: s.auth, Leases: leases, ClientCertAuth: s.cfg.ClientTLS.ClientCertAuth}
	if s.lessor != nil {
		cfg.LeaseKeys = s.lessor.Keys
	}
	s.rel.authUnary, s.rel.authStream = rpc.AuthInterceptors(cfg)
}

// forwardToken makes the self client (lock and election services) call
// this server as the user who called the service: the caller's token is
// passed on, as etcd's in-process v3client does with the caller's context.
func forwardToken() []grpc.DialOption {
	fwd := func(ctx context.Context) context.Context {
		md, ok := metadata.FromIncomingContext(ctx)
		if !ok {
			return ctx
		}
		for _, k := range []string{rpctypes.TokenFieldNameGRPC, rpctypes.TokenFieldNameSwagger} {
			if v := md.Get(k); len(v) > 0 {
				return metadata.AppendToOutgoingContext(ctx, k, v[0])
			}
		}
		return ctx
	}
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return inv(fwd(ctx), method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, st grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return st(fwd(ctx), desc, cc, method, opts...)
		}),
	}
}
