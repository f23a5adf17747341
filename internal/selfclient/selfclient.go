package selfclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// New returns a client of endpoint (listen.SelfEndpoint) over tc (nil:
// plain). It dials lazily, so it can be made before the port serves.
func New(endpoint string, tc *tls.Config, lg *zap.Logger) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 5 * time.Second,
		TLS:         tc,
		Logger:      lg,
		DialOptions: []grpc.DialOption{
			grpc.WithChainUnaryInterceptor(forwardUnary),
			grpc.WithChainStreamInterceptor(forwardStream),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("self client: %w", err)
	}
	return c, nil
}

// forwardToken copies the caller's token from the incoming request's
// metadata to the outgoing call's.
func forwardToken(ctx context.Context) context.Context {
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

func forwardUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return inv(forwardToken(ctx), method, req, reply, cc, opts...)
}

func forwardStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, st grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return st(forwardToken(ctx), desc, cc, method, opts...)
}
