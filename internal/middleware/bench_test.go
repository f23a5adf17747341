package middleware

import (
	"context"
	"io"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// chained composes unary interceptors the way grpc.ChainUnaryInterceptor does.
func chained(us []grpc.UnaryServerInterceptor, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) grpc.UnaryHandler {
	for i := len(us) - 1; i >= 0; i-- {
		ic, next := us[i], h
		h = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
	}
	return h
}

// perCall builds the handler of level i the way gRPC's chain does on every
// call: a new closure for each level.
func perCall(us []grpc.UnaryServerInterceptor, i int, info *grpc.UnaryServerInfo, final grpc.UnaryHandler) grpc.UnaryHandler {
	if i == len(us) {
		return final
	}
	return func(ctx context.Context, req any) (any, error) {
		return us[i](ctx, req, info, perCall(us, i+1, info, final))
	}
}

func benchChains(b *testing.B) map[string][]grpc.UnaryServerInterceptor {
	none := []grpc.UnaryServerInterceptor(nil)
	full, _ := Chain(newFullChain(b, 0, nil).opts)
	withRate, _ := Chain(newFullChain(b, 1e9, nil).opts)
	return map[string][]grpc.UnaryServerInterceptor{"none": none, "chain": full, "chain+ratelimit": withRate}
}

// BenchmarkInterceptorsOnly measures the chain's own cost per request,
// without network or serialization.
func BenchmarkInterceptorsOnly(b *testing.B) {
	ctx := peerCtx("127.0.0.1")
	info := &grpc.UnaryServerInfo{FullMethod: echoMethod}
	req := wrapperspb.Bytes([]byte("x"))
	final := func(ctx context.Context, req any) (any, error) { return req, nil }
	for _, name := range []string{"none", "chain", "chain+ratelimit"} {
		us := benchChains(b)[name]
		composed := Compose(us...)
		for how, h := range map[string]grpc.UnaryHandler{
			"grpc":    func(ctx context.Context, req any) (any, error) { return perCall(us, 0, info, final)(ctx, req) },
			"compose": func(ctx context.Context, req any) (any, error) { return composed(ctx, req, info, final) },
		} {
			b.Run(name+"/"+how, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := h(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkUnaryLoopback measures whole requests through a real gRPC server
// on 127.0.0.1, sequentially and with parallel clients.
func BenchmarkUnaryLoopback(b *testing.B) {
	for _, name := range []string{"none", "chain", "chain+ratelimit"} {
		us := benchChains(b)[name]
		env := startServer(b, us, nil, nil, nil)
		ctx := context.Background()
		req := wrapperspb.Bytes([]byte("payload"))
		b.Run(name+"/serial", func(b *testing.B) {
			out := new(wrapperspb.BytesValue)
			for b.Loop() {
				if err := env.conn.Invoke(ctx, echoMethod, req, out); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				out := new(wrapperspb.BytesValue)
				for pb.Next() {
					if err := env.conn.Invoke(ctx, echoMethod, req, out); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// deep recurses n frames of ~1 KiB each, as a handler deep in gRPC, our
// layers and Pebble does.
//
//go:noinline
func deep(n int) byte {
	var buf [1000]byte
	buf[n%len(buf)] = byte(n)
	if n == 0 {
		return buf[0]
	}
	return deep(n-1) + buf[n%len(buf)]
}

// BenchmarkFreshGoroutineDeepCall compares a request on a fresh goroutine
// that grows its stack on the way down with one that pre-grows it first
// (GrowStackUnary).
func BenchmarkFreshGoroutineDeepCall(b *testing.B) {
	for _, grow := range []bool{false, true} {
		name := "no-pregrow"
		if grow {
			name = "pregrow"
		}
		b.Run(name, func(b *testing.B) {
			done := make(chan byte)
			for b.Loop() {
				go func() {
					if grow {
						growStack()
					}
					done <- deep(20)
				}()
				<-done
			}
		})
	}
}

// BenchmarkSlowLogSampled: every put is slow (UnaryWarn 1ns) and the logger
// samples as internal/logutil's does, so nearly all lines are dropped; the
// interceptor's cost per call is what summarising a dropped line costs.
func BenchmarkSlowLogSampled(b *testing.B) {
	core := zapcore.NewSamplerWithOptions(
		zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.InfoLevel),
		time.Second, 100, 100)
	sl := NewSlowLog(SlowLogConfig{Logger: zap.New(core), UnaryWarn: time.Nanosecond, ApplyWarn: time.Nanosecond})
	ic := sl.UnaryServerInterceptor()
	ctx := peerCtx("127.0.0.1")
	put := &pb.PutRequest{Key: []byte("key-0001"), Value: make([]byte, 256)}
	rng := &pb.RangeRequest{Key: []byte("key-0001")}
	for _, c := range []struct {
		name, method string
		req, resp    any
	}{
		{"put", "/etcdserverpb.KV/Put", put, &pb.PutResponse{Header: &pb.ResponseHeader{Revision: 2}}},
		{"range", "/etcdserverpb.KV/Range", rng, &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 2}, Count: 1}},
	} {
		info := &grpc.UnaryServerInfo{FullMethod: c.method}
		h := func(context.Context, any) (any, error) { return c.resp, nil }
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ic(ctx, c.req, info, h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
