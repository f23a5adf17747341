package migrate

import (
	"context"
	"crypto/subtle"
	"strings"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/migrate/mode"
)

// gRPC metadata of the migration protocol.
const (
	// HeaderToken carries the marker's token on the follower's writes.
	HeaderToken = "metastore-migrate-token"
	// HeaderCutover, with HeaderToken, on a Maintenance.Status request ends
	// migration mode on every member: the member that answers commits the
	// end through Raft and answers once it has applied it.
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

// ErrStateUnknown is what a client write gets on a member that has not
// received the cluster's state yet (a member just added): it cannot tell
// whether the cluster still follows etcd.
var ErrStateUnknown = status.Error(codes.Unavailable,
	"metastore: this member has not received the cluster's state yet: writes are refused until it has")

// Guard refuses client writes while the cluster is in migration mode. The
// mode is replicated state (internal/migrate/mode), read from this member's
// engine, so a member added during the migration refuses writes too.
type Guard struct {
	// FollowerTxn, when set, serves the follower's Txn calls instead of the
	// regular handler: the server gives one without the --max-txn-ops
	// bound, since one etcd revision (a lease revoke, a large delete) may
	// change more keys than a client txn may, and must stay one revision.
	FollowerTxn func(context.Context, *pb.TxnRequest) (*pb.TxnResponse, error)

	// load reads the member's replicated migration state (mode.Load).
	load func() (m *mode.Marker, known bool, err error)
	// end commits the end of migration mode through Raft and returns once
	// this member applied it (or the request's failure).
	end func(ctx context.Context, token string) error
	// open is set once this member's state says the cluster no longer
	// migrates, so that writes then cost no engine read. It is never
	// cleared: nothing puts a running cluster back into migration mode
	// (only a restore does, into a new data dir).
	open atomic.Bool
}

// NewGuard returns a guard over the state load reads; end performs the
// cut-over.
func NewGuard(load func() (*mode.Marker, bool, error), end func(ctx context.Context, token string) error) *Guard {
	return &Guard{load: load, end: end}
}

// marker returns the migration marker, nil once writes are open, or the
// error a write gets when the state cannot be read or is not known yet.
func (g *Guard) marker() (*mode.Marker, error) {
	if g.open.Load() {
		return nil, nil
	}
	m, known, err := g.load()
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	if !known {
		return nil, ErrStateUnknown
	}
	if m == nil {
		g.open.Store(true)
	}
	return m, nil
}

// Migrating reports whether client writes are refused.
func (g *Guard) Migrating() bool {
	m, err := g.marker()
	return m != nil || err != nil
}

// token returns the request's token when it is m's.
func token(ctx context.Context, m *mode.Marker) (string, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, t := range md.Get(HeaderToken) {
		if subtle.ConstantTimeCompare([]byte(t), []byte(m.Token)) == 1 {
			return t, true
		}
	}
	return "", false
}

// Unary is the gRPC interceptor.
func (g *Guard) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if info.FullMethod == statusMethod {
		return g.status(ctx, req, handler)
	}
	if !IsWrite(info.FullMethod, req) {
		return handler(ctx, req)
	}
	m, err := g.marker()
	if err != nil {
		return nil, err
	}
	if m == nil {
		return handler(ctx, req)
	}
	if _, ok := token(ctx, m); !ok {
		return nil, ErrMigrating
	}
	if r, ok := req.(*pb.TxnRequest); ok && info.FullMethod == txnMethod && g.FollowerTxn != nil {
		return g.FollowerTxn(ctx, r)
	}
	return handler(ctx, req)
}

func (g *Guard) status(ctx context.Context, req any, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get(HeaderCutover)) > 0 {
		m, err := g.marker()
		if err != nil {
			return nil, err
		}
		if m != nil {
			tok, ok := token(ctx, m)
			if !ok {
				return nil, mode.ErrBadToken
			}
			if err := g.end(ctx, tok); err != nil {
				return nil, err
			}
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
