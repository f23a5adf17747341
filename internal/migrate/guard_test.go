package migrate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
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

// The guard refuses writes without the token, lets the follower's through,
// and a cut-over with the token ends migration mode durably.
func TestGuard(t *testing.T) {
	dir := t.TempDir()
	if err := WriteMarker(dir, Marker{Token: "tok", Revision: 7}); err == nil {
		t.Fatal("marker written without a member dir")
	}
	g, err := NewGuard(dir)
	if err != nil || g.Migrating() {
		t.Fatalf("no marker: %v, migrating %v", err, g.Migrating())
	}
	dir = t.TempDir()
	if err := mkdirMember(dir); err != nil {
		t.Fatal(err)
	}
	if err := WriteMarker(dir, Marker{Token: "tok", Revision: 7}); err != nil {
		t.Fatal(err)
	}
	g, err = NewGuard(dir)
	if err != nil || !g.Migrating() {
		t.Fatalf("marker: %v, migrating %v", err, g.Migrating())
	}
	ok := func(context.Context, any) (any, error) { return "done", nil }
	put := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Put"}
	if _, err := g.Unary(context.Background(), &pb.PutRequest{}, put, ok); !errors.Is(err, ErrMigrating) {
		t.Fatalf("client write: %v", err)
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
	if _, err := g.Unary(withToken("wrong", HeaderCutover, "1"), &pb.StatusRequest{}, st, ok); err == nil || !g.Migrating() {
		t.Fatalf("cut-over with a wrong token: %v, migrating %v", err, g.Migrating())
	}
	if _, err := g.Unary(withToken("tok", HeaderCutover, "1"), &pb.StatusRequest{}, st, ok); err != nil || g.Migrating() {
		t.Fatalf("cut-over: %v, migrating %v", err, g.Migrating())
	}
	if m, err := ReadMarker(dir); m != nil || err != nil {
		t.Fatalf("marker after the cut-over: %v, %v", m, err)
	}
	if _, err := g.Unary(context.Background(), &pb.PutRequest{}, put, ok); err != nil {
		t.Fatalf("client write after the cut-over: %v", err)
	}
}

func mkdirMember(dataDir string) error { return os.MkdirAll(filepath.Join(dataDir, "member"), 0o700) }
