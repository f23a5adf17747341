package rpc

import (
	"bytes"
	"context"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/respbudget"
)

// TestBudgetCodecReleasesOnceEncoded: a response that drew on the shared
// budget stays charged until the codec has encoded it (and not when another
// response is encoded); a small one is released at once; the encoding is
// gRPC's proto encoding.
func TestBudgetCodecReleasesOnceEncoded(t *testing.T) {
	b := respbudget.New(8 << 20)
	c := NewBudgetCodec()
	ctx := context.Background()

	big := b.NewAccount()
	if err := big.Charge(ctx, respbudget.SmallBytes+1); err != nil {
		t.Fatal(err)
	}
	bigResp := &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 100)}}, Count: 1}
	c.releaseAfterEncode(bigResp, big)

	small := b.NewAccount()
	if err := small.Charge(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	c.releaseAfterEncode(&pb.RangeResponse{}, small)
	held := b.Stats().InFlight
	if held == 0 {
		t.Fatal("the big response's charge was released before it was encoded")
	}

	if _, err := c.Marshal(&pb.RangeResponse{Count: 2}); err != nil {
		t.Fatal(err)
	}
	if got := b.Stats().InFlight; got != held {
		t.Fatalf("encoding another response changed the charge: %d, want %d", got, held)
	}
	out, err := c.Marshal(bigResp)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Stats().InFlight; got != 0 {
		t.Fatalf("in flight after the big response was encoded: %d, want 0", got)
	}
	want, err := proto.Marshal(bigResp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Materialize(), want) {
		t.Fatal("the codec's encoding differs from proto.Marshal")
	}
	out.Free()
	if c.n.Load() != 0 {
		t.Fatalf("%d responses still pending", c.n.Load())
	}

	// Without a codec (nil), the charge ends when the handler returns.
	again := b.NewAccount()
	if err := again.Charge(ctx, respbudget.SmallBytes+1); err != nil {
		t.Fatal(err)
	}
	(*BudgetCodec)(nil).releaseAfterEncode(bigResp, again)
	if got := b.Stats().InFlight; got != 0 {
		t.Fatalf("in flight after a release without codec: %d, want 0", got)
	}
}
