package middleware

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/prometheus/client_golang/prometheus"

	mmetrics "github.com/metastore/metastore/internal/metrics"
)

// echoServer is a hand-registered test service: the request payload picks
// the behaviour.
type echoServer struct {
	entered chan struct{} // one send per "block" request that started
	release chan struct{} // closed to let "block" requests return
}

func newEchoServer() *echoServer {
	return &echoServer{entered: make(chan struct{}, 64), release: make(chan struct{})}
}

func (s *echoServer) echo(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	switch string(in.GetValue()) {
	case "panic":
		panic("handler panic")
	case "block":
		s.entered <- struct{}{}
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return in, nil
}

const (
	echoMethod   = "/test.Echo/Echo"
	streamMethod = "/test.Echo/Stream"
)

var echoDesc = grpc.ServiceDesc{
	ServiceName: "test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, req any) (any, error) {
				return srv.(*echoServer).echo(ctx, req.(*wrapperspb.BytesValue))
			}
			if ic == nil {
				return h(ctx, in)
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: echoMethod}, h)
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(srv any, ss grpc.ServerStream) error {
			for {
				in := new(wrapperspb.BytesValue)
				if err := ss.RecvMsg(in); err == io.EOF {
					return nil
				} else if err != nil {
					return err
				}
				if string(in.GetValue()) == "panic" {
					panic("stream panic")
				}
				if err := ss.SendMsg(in); err != nil {
					return err
				}
			}
		},
	}},
}

type testEnv struct {
	svc  *echoServer
	srv  *grpc.Server
	lis  net.Listener
	conn *grpc.ClientConn
}

// startServer serves the echo service on 127.0.0.1 with the given
// interceptors and returns a connected client.
func startServer(t testing.TB, us []grpc.UnaryServerInterceptor, ss []grpc.StreamServerInterceptor, wrap func(net.Listener) net.Listener, init func(*grpc.Server)) *testEnv {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		lis = wrap(lis)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(us...), grpc.ChainStreamInterceptor(ss...))
	svc := newEchoServer()
	srv.RegisterService(&echoDesc, svc)
	if init != nil {
		init(srv)
	}
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{svc: svc, srv: srv, lis: lis, conn: conn}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	return env
}

func (e *testEnv) call(ctx context.Context, payload string) (string, error) {
	out := new(wrapperspb.BytesValue)
	err := e.conn.Invoke(ctx, echoMethod, wrapperspb.Bytes([]byte(payload)), out)
	return string(out.GetValue()), err
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func scrape(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	hs := httptest.NewServer(mmetrics.Handler(g))
	defer hs.Close()
	resp, err := http.Get(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
