package selfclient

import (
	"context"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

func TestTokenForwarded(t *testing.T) {
	cases := []struct {
		name string
		in   metadata.MD
		want string
	}{
		{"gRPC token", metadata.Pairs(rpctypes.TokenFieldNameGRPC, "tok1"), "tok1"},
		{"gateway token", metadata.Pairs(rpctypes.TokenFieldNameSwagger, "tok2"), "tok2"},
		{"no token", metadata.Pairs("other", "x"), ""},
	}
	for _, c := range cases {
		ctx := metadata.NewIncomingContext(context.Background(), c.in)
		var got metadata.MD
		inv := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
			got, _ = metadata.FromOutgoingContext(ctx)
			return nil
		}
		if err := forwardUnary(ctx, "/m", nil, nil, nil, inv); err != nil {
			t.Fatal(err)
		}
		tok := append(got.Get(rpctypes.TokenFieldNameGRPC), got.Get(rpctypes.TokenFieldNameSwagger)...)
		if (c.want == "" && len(tok) != 0) || (c.want != "" && (len(tok) != 1 || tok[0] != c.want)) {
			t.Errorf("%s: forwarded %v, want %q", c.name, tok, c.want)
		}
		var streamed metadata.MD
		st := func(ctx context.Context, _ *grpc.StreamDesc, _ *grpc.ClientConn, _ string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
			streamed, _ = metadata.FromOutgoingContext(ctx)
			return nil, nil
		}
		if _, err := forwardStream(ctx, nil, nil, "/m", st); err != nil {
			t.Fatal(err)
		}
		if len(streamed) != len(got) {
			t.Errorf("%s: stream metadata %v, unary %v", c.name, streamed, got)
		}
	}
	c, err := New("127.0.0.1:1", nil, nil)
	if err != nil {
		t.Fatalf("a lazy client failed to build: %v", err)
	}
	_ = c.Close()
}
