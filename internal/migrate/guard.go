package migrate

import (
	"context"
	"crypto/subtle"
	"strings"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// gRPC metadata of the migration protocol.
const (
	// HeaderToken carries the marker's token on the follower's writes.
	HeaderToken = "metastore-migrate-token"
	// HeaderCutover, with HeaderToken, on a Maintenance.Status request ends
	// migration mode on the member that answers.
	HeaderCutover = "metastore-migrate-cutover"
	// HeaderMigrating is set on every Status response: "true" while the
	// member refuses client writes.
	HeaderMigrating = "metastore-migrating"

	statusMethod = "/etcdserverpb.Maintenance/Status"
	txnMethod    = "/etcdserverpb.KV/Txn"
)

// ErrMigrating is what a client write gets during a migration.
var ErrMigrating = status.Error(codes.FailedPrecondition,
	"metastore: following etcd for a migration: writes are refused until `metastore migrate cutover`")

// Guard refuses client writes while the member is in migration mode.
type Guard struct {
	// FollowerTxn, when set, serves the follower's Txn calls instead of the
	// regular handler: the server gives one without the --max-txn-ops
	// bound, since one etcd revision (a lease revoke, a large delete) may
	// change more keys than a client txn may, and must stay one revision.
	FollowerTxn func(context.Context, *pb.TxnRequest) (*pb.TxnResponse, error)

	dataDir string
	// marker is nil once not migrating. An atomic pointer: every request
	// reads it; only a cut-over, under cutMu, clears it.
	marker atomic.Pointer[Marker]
	cutMu  sync.Mutex
}

// NewGuard loads dataDir's migration state.
func NewGuard(dataDir string) (*Guard, error) {
	m, err := ReadMarker(dataDir)
	if err != nil {
		return nil, err
	}
	g := &Guard{dataDir: dataDir}
	g.marker.Store(m)
	return g, nil
}

// Migrating reports whether client writes are refused.
func (g *Guard) Migrating() bool { return g.marker.Load() != nil }

func (g *Guard) tokenOK(ctx context.Context) bool {
	m := g.marker.Load()
	if m == nil {
		return false
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, t := range md.Get(HeaderToken) {
		if subtle.ConstantTimeCompare([]byte(t), []byte(m.Token)) == 1 {
			return true
		}
	}
	return false
}

// Unary is the gRPC interceptor.
func (g *Guard) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if info.FullMethod == statusMethod {
		return g.status(ctx, req, handler)
	}
	if !g.Migrating() || !IsWrite(info.FullMethod, req) {
		return handler(ctx, req)
	}
	if !g.tokenOK(ctx) {
		return nil, ErrMigrating
	}
	if r, ok := req.(*pb.TxnRequest); ok && info.FullMethod == txnMethod && g.FollowerTxn != nil {
		return g.FollowerTxn(ctx, r)
	}
	return handler(ctx, req)
}

func (g *Guard) status(ctx context.Context, req any, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get(HeaderCutover)) > 0 && g.Migrating() {
		if !g.tokenOK(ctx) {
			return nil, status.Error(codes.PermissionDenied, "metastore: migration cut-over needs the migration token")
		}
		g.cutMu.Lock()
		err := removeMarker(g.dataDir)
		if err == nil {
			g.marker.Store(nil)
		}
		g.cutMu.Unlock()
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	state := "false"
	if g.Migrating() {
		state = "true"
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs(HeaderMigrating, state))
	return handler(ctx, req)
}

// readOnlyAuth are the Auth methods that change nothing.
var readOnlyAuth = map[string]bool{
	"/etcdserverpb.Auth/Authenticate": true, "/etcdserverpb.Auth/AuthStatus": true,
	"/etcdserverpb.Auth/UserGet": true, "/etcdserverpb.Auth/UserList": true,
	"/etcdserverpb.Auth/RoleGet": true, "/etcdserverpb.Auth/RoleList": true,
}

// IsWrite reports whether a call would change the state the follower
// mirrors: keys, leases (grant, revoke) or auth.
func IsWrite(method string, req any) bool {
	switch method {
	case "/etcdserverpb.KV/Put", "/etcdserverpb.KV/DeleteRange", "/etcdserverpb.KV/Compact",
		"/etcdserverpb.Lease/LeaseGrant", "/etcdserverpb.Lease/LeaseRevoke",
		"/v3lockpb.Lock/Lock", "/v3lockpb.Lock/Unlock",
		"/v3electionpb.Election/Campaign", "/v3electionpb.Election/Proclaim", "/v3electionpb.Election/Resign":
		return true
	case "/etcdserverpb.KV/Txn":
		r, ok := req.(*pb.TxnRequest)
		return !ok || txnWrites(r)
	}
	return strings.HasPrefix(method, "/etcdserverpb.Auth/") && !readOnlyAuth[method]
}

func txnWrites(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			switch {
			case op.GetRequestPut() != nil, op.GetRequestDeleteRange() != nil:
				return true
			case op.GetRequestTxn() != nil && txnWrites(op.GetRequestTxn()):
				return true
			}
		}
	}
	return false
}
