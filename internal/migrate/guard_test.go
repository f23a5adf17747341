package migrate

import (
	"context"
	"errors"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/migrate/mode"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/enginetest"
	"github.com/metastore/metastore/internal/storage/memory"
)

func TestIsWrite(t *testing.T) {
	readTxn := &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a")}}}}}
	nestedPut := &pb.TxnRequest{Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a")}}}}}}}}}
	for _, c := range []struct {
		method string
		req    any
		want   bool
	}{
		{"/etcdserverpb.KV/Range", &pb.RangeRequest{}, false},
		{"/etcdserverpb.KV/Put", &pb.PutRequest{}, true},
		{"/etcdserverpb.KV/DeleteRange", &pb.DeleteRangeRequest{}, true},
		{"/etcdserverpb.KV/Compact", &pb.CompactionRequest{}, true},
		{"/etcdserverpb.KV/Txn", readTxn, false},
		{"/etcdserverpb.KV/Txn", nestedPut, true},
		{"/etcdserverpb.Lease/LeaseGrant", &pb.LeaseGrantRequest{}, true},
		{"/etcdserverpb.Lease/LeaseTimeToLive", &pb.LeaseTimeToLiveRequest{}, false},
		{"/etcdserverpb.Auth/UserAdd", &pb.AuthUserAddRequest{}, true},
		{"/etcdserverpb.Auth/Authenticate", &pb.AuthenticateRequest{}, false},
		{"/v3lockpb.Lock/Lock", nil, true},
		{"/etcdserverpb.Maintenance/Status", &pb.StatusRequest{}, false},
	} {
		if got := IsWrite(c.method, c.req); got != c.want {
			t.Errorf("IsWrite(%s) = %v, want %v", c.method, got, c.want)
		}
	}
}

// The guard refuses writes without the token and while the state is not
// known, lets the follower's through, and a cut-over with the token ends
// migration mode through the end request the applier executes.
func TestGuard(t *testing.T) {
	eng := memory.New()
	t.Cleanup(func() { _ = eng.Close() })
	commit := func(f func(b storage.Batch) error) { t.Helper(); enginetest.Commit(t, eng, f) }
	commit(func(b storage.Batch) error { return mode.Stage(b, mode.Marker{Token: "tok", Revision: 7}) })
	var ends []string
	end := func(_ context.Context, tok string) error {
		ends = append(ends, tok)
		// What the applier does with the committed end request.
		r := mode.EndRequest(tok)
		got, ok := mode.IsEnd(r)
		if !ok || got != tok {
			t.Fatalf("IsEnd(EndRequest(%q)) = %q, %v", tok, got, ok)
		}
		var failure error
		commit(func(b storage.Batch) error {
			var err error
			failure, err = mode.StageEnd(b, eng, got)
			return err
		})
		return failure
	}
	g := NewGuard(func() (*mode.Marker, bool, error) { return mode.Load(eng) }, end)
	ok := func(context.Context, any) (any, error) { return "done", nil }
	put := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Put"}
	// No applied index: a member that has not received the cluster's state.
	if _, err := g.Unary(context.Background(), &pb.PutRequest{}, put, ok); !errors.Is(err, ErrStateUnknown) || !g.Migrating() {
		t.Fatalf("client write before any state: %v", err)
	}
	commit(func(b storage.Batch) error { return b.Set(storage.KeyAppliedIndex, make([]byte, 16)) })
	if _, err := g.Unary(context.Background(), &pb.PutRequest{}, put, ok); !errors.Is(err, ErrMigrating) {
		t.Fatalf("client write: %v", err)
	}
	rng := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Range"}
	if r, err := g.Unary(context.Background(), &pb.RangeRequest{}, rng, ok); err != nil || r != "done" {
		t.Fatalf("read: %v", err)
	}
	withToken := func(tok string, kv ...string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs(append([]string{HeaderToken, tok}, kv...)...))
	}
	if _, err := g.Unary(withToken("wrong"), &pb.PutRequest{}, put, ok); !errors.Is(err, ErrMigrating) {
		t.Fatalf("write with a wrong token: %v", err)
	}
	if r, err := g.Unary(withToken("tok"), &pb.PutRequest{}, put, ok); err != nil || r != "done" {
		t.Fatalf("follower's write: %v", err)
	}
	st := &grpc.UnaryServerInfo{FullMethod: statusMethod}
	if _, err := g.Unary(withToken("wrong", HeaderCutover, "1"), &pb.StatusRequest{}, st, ok); !errors.Is(err, mode.ErrBadToken) || !g.Migrating() || len(ends) != 0 {
		t.Fatalf("cut-over with a wrong token: %v, migrating %v, ends %v", err, g.Migrating(), ends)
	}
	// The applier refuses an end request with a wrong token too.
	if err := end(context.Background(), "wrong"); !errors.Is(err, mode.ErrBadToken) || !g.Migrating() {
		t.Fatalf("end request with a wrong token: %v, migrating %v", err, g.Migrating())
	}
	ends = nil
	if _, err := g.Unary(withToken("tok", HeaderCutover, "1"), &pb.StatusRequest{}, st, ok); err != nil || g.Migrating() || len(ends) != 1 {
		t.Fatalf("cut-over: %v, migrating %v, ends %v", err, g.Migrating(), ends)
	}
	if m, known, err := mode.Load(eng); m != nil || !known || err != nil {
		t.Fatalf("state after the cut-over: %v, %v, %v", m, known, err)
	}
	if _, err := g.Unary(context.Background(), &pb.PutRequest{}, put, ok); err != nil {
		t.Fatalf("client write after the cut-over: %v", err)
	}
	// A second cut-over (sent to another member) is a no-op.
	if _, err := g.Unary(withToken("tok", HeaderCutover, "1"), &pb.StatusRequest{}, st, ok); err != nil || len(ends) != 1 {
		t.Fatalf("second cut-over: %v, ends %v", err, ends)
	}
	if failure, err := mode.StageEnd(eng.NewBatch(), eng, "tok"); failure != nil || err != nil {
		t.Fatalf("end request after the end: %v, %v", failure, err)
	}
}

// A damaged marker refuses every write, with the reason.
func TestGuardDamagedState(t *testing.T) {
	eng := memory.New()
	t.Cleanup(func() { _ = eng.Close() })
	b := eng.NewBatch()
	_ = b.Set(storage.KeyAppliedIndex, make([]byte, 16))
	_ = b.Set(mode.Key, []byte("{"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	g := NewGuard(func() (*mode.Marker, bool, error) { return mode.Load(eng) }, nil)
	put := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Put"}
	_, err := g.Unary(context.Background(), &pb.PutRequest{}, put, func(context.Context, any) (any, error) { return nil, nil })
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("write with a damaged marker: %v", err)
	}
}
