package middleware

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"
)

type traceKey string

// tracer returns an interceptor that records its entry and exit in log,
// calling its handler calls times (0: refuses with an error).
func tracer(name string, calls int, log *[]string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		*log = append(*log, name+"(")
		defer func() { *log = append(*log, ")"+name) }()
		if calls == 0 {
			return nil, errors.New(name + " refused")
		}
		var resp any
		var err error
		for range calls {
			if resp, err = h(context.WithValue(ctx, traceKey(name), true), fmt.Sprint(req, ">", name)); err != nil {
				return nil, err
			}
		}
		return resp, nil
	}
}

// TestComposeSameAsGRPCChain runs chains through Compose and through the
// composition gRPC's ChainUnaryInterceptor does (chained): the same order of
// calls, requests, contexts, responses and errors, also when an interceptor
// refuses or calls its handler twice.
func TestComposeSameAsGRPCChain(t *testing.T) {
	for _, calls := range [][]int{{}, {1}, {1, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 0, 1}, {1, 2, 1}, {2, 2, 1}, {1, 1, 0}} {
		t.Run(fmt.Sprint(calls), func(t *testing.T) {
			run := func(compose bool) (string, any, error) {
				var log []string
				var us []grpc.UnaryServerInterceptor
				for i, n := range calls {
					us = append(us, tracer(fmt.Sprint("i", i), n, &log))
				}
				final := func(ctx context.Context, req any) (any, error) {
					seen := 0
					for i := range calls {
						if ctx.Value(traceKey(fmt.Sprint("i", i))) != nil {
							seen++
						}
					}
					log = append(log, fmt.Sprintf("handler[%v saw %d]", req, seen))
					return fmt.Sprint("resp:", req), nil
				}
				info := &grpc.UnaryServerInfo{FullMethod: "/test/M"}
				var h grpc.UnaryHandler
				if compose {
					c := Compose(us...)
					h = func(ctx context.Context, req any) (any, error) { return c(ctx, req, info, final) }
				} else {
					h = chained(us, info, final)
				}
				resp, err := h(context.Background(), "req")
				return strings.Join(log, " "), resp, err
			}
			wantLog, wantResp, wantErr := run(false)
			gotLog, gotResp, gotErr := run(true)
			if gotLog != wantLog || gotResp != wantResp || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Fatalf("Compose:\n  %s -> %v, %v\ngRPC's chain:\n  %s -> %v, %v", gotLog, gotResp, gotErr, wantLog, wantResp, wantErr)
			}
		})
	}
}

// TestComposeAllocs pins the point of Compose: its allocations per call do
// not grow with the number of interceptors.
func TestComposeAllocs(t *testing.T) {
	pass := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(ctx, req)
	}
	final := func(ctx context.Context, req any) (any, error) { return req, nil }
	info := &grpc.UnaryServerInfo{FullMethod: "/test/M"}
	ctx := context.Background()
	for _, n := range []int{2, 10} {
		c := Compose(make10(pass)[:n]...)
		got := testing.AllocsPerRun(100, func() {
			if _, err := c(ctx, info, info, final); err != nil {
				t.Fatal(err)
			}
		})
		if got > 2 {
			t.Errorf("%d interceptors: %v allocations per call, want at most 2", n, got)
		}
	}
}

func make10(u grpc.UnaryServerInterceptor) []grpc.UnaryServerInterceptor {
	out := make([]grpc.UnaryServerInterceptor, 10)
	for i := range out {
		out[i] = u
	}
	return out
}
