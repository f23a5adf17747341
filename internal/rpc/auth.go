package rpc

import (
	"context"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/metastore/metastore/internal/auth"
)

// AuthBackend is what the Auth service needs from the request path.
type AuthBackend interface {
	AuthEnable(context.Context, *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error)
	AuthDisable(context.Context, *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error)
	AuthStatus(context.Context, *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error)
	Authenticate(context.Context, *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error)
	UserAdd(context.Context, *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error)
	UserGet(context.Context, *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error)
	UserList(context.Context, *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error)
	UserDelete(context.Context, *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error)
	UserChangePassword(context.Context, *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error)
	UserGrantRole(context.Context, *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error)
	UserRevokeRole(context.Context, *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error)
	RoleAdd(context.Context, *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error)
	RoleGet(context.Context, *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error)
	RoleList(context.Context, *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error)
	RoleDelete(context.Context, *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error)
	RoleGrantPermission(context.Context, *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error)
	RoleRevokePermission(context.Context, *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error)
}

type authServer struct {
	pb.UnimplementedAuthServer
	b   AuthBackend
	hdr HeaderSource
}

// NewAuthServer returns etcd's Auth service.
func NewAuthServer(b AuthBackend, hdr HeaderSource) pb.AuthServer {
	return &authServer{b: b, hdr: hdr}
}

type withHeader interface{ GetHeader() *pb.ResponseHeader }

func authReply[T withHeader](s *authServer, resp T, err error) (T, error) {
	if err != nil {
		var zero T
		return zero, toGRPCError(err)
	}
	fillHeader(s.hdr, resp.GetHeader())
	return resp, nil
}

func (s *authServer) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	resp, err := s.b.AuthEnable(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	resp, err := s.b.AuthDisable(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	resp, err := s.b.AuthStatus(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	resp, err := s.b.Authenticate(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	resp, err := s.b.UserAdd(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	resp, err := s.b.UserGet(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	resp, err := s.b.UserList(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	resp, err := s.b.UserDelete(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	resp, err := s.b.UserChangePassword(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	resp, err := s.b.UserGrantRole(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	resp, err := s.b.UserRevokeRole(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	resp, err := s.b.RoleAdd(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	resp, err := s.b.RoleGet(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	resp, err := s.b.RoleList(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	resp, err := s.b.RoleDelete(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	resp, err := s.b.RoleGrantPermission(ctx, r)
	return authReply(s, resp, err)
}

func (s *authServer) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	resp, err := s.b.RoleRevokePermission(ctx, r)
	return authReply(s, resp, err)
}

// AuthConfig wires the auth interceptors.
type AuthConfig struct {
	Store *auth.Store
	// LeaseKeys and Leases let lease calls be checked against the keys
	// attached to the leases; nil skips those checks.
	LeaseKeys auth.LeaseKeys
	Leases    func() []int64
	// ClientCertAuth (--client-cert-auth) makes a verified client
	// certificate's common name the user of a request without a token.
	ClientCertAuth bool
}

// adminMethods need the root role, as etcd's authMaintenanceServer,
// kvServer.Compact and the membership calls do.
var adminMethods = map[string]bool{
	"/etcdserverpb.KV/Compact":             true,
	"/etcdserverpb.Maintenance/Defragment": true,
	"/etcdserverpb.Maintenance/Hash":       true,
	"/etcdserverpb.Maintenance/HashKV":     true,
	"/etcdserverpb.Maintenance/MoveLeader": true,
	"/etcdserverpb.Maintenance/Downgrade":  true,
	"/etcdserverpb.Maintenance/Snapshot":   true,
	"/etcdserverpb.Cluster/MemberAdd":      true,
	"/etcdserverpb.Cluster/MemberRemove":   true,
	"/etcdserverpb.Cluster/MemberUpdate":   true,
	"/etcdserverpb.Cluster/MemberPromote":  true,
	"/etcdserverpb.Maintenance/Alarm":      true, // except GET, below
}

// withAuthInfo resolves the request's token (metadata "token", or the
// gateway's "authorization") into the context.
func withAuthInfo(ctx context.Context, as *auth.Store, certAuth bool) context.Context {
	if !as.IsAuthEnabled() {
		return ctx
	}
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ctx
	}
	ts := md.Get(rpctypes.TokenFieldNameGRPC)
	if len(ts) == 0 {
		ts = md.Get(rpctypes.TokenFieldNameSwagger)
	}
	if len(ts) == 0 {
		if certAuth {
			return withCertUser(ctx, as, md)
		}
		return ctx
	}
	ai, err := as.AuthInfoFromToken(strings.TrimPrefix(ts[0], "Bearer "))
	return auth.NewContext(ctx, ai, err)
}

// withCertUser is etcd's AuthInfoFromTLS: the common name of the verified
// client certificate, except for requests relayed by the gateway (whose
// certificate is the server's own).
func withCertUser(ctx context.Context, as *auth.Store, md metadata.MD) context.Context {
	if len(md.Get("grpcgateway-accept")) > 0 {
		return ctx
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p == nil {
		return ctx
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return ctx
	}
	for _, chain := range ti.State.VerifiedChains {
		if len(chain) == 0 {
			continue
		}
		return auth.NewContext(ctx, &auth.AuthInfo{Username: chain[0].Subject.CommonName, Revision: as.Revision()}, nil)
	}
	return ctx
}

func checkAdmin(ctx context.Context, as *auth.Store) error {
	p := as.Current()
	if !p.Enabled() {
		return nil
	}
	ai, err := auth.FromContext(ctx)
	if err != nil {
		return err
	}
	return p.IsAdminPermitted(ai)
}

// requireUser is etcd's requireAuthInfo: with auth enabled, a call without
// a valid token is refused.
func requireUser(ctx context.Context, p auth.Perms) (*auth.AuthInfo, error) {
	ai, err := auth.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	if ai == nil {
		return nil, auth.ErrUserEmpty
	}
	return ai, nil
}

func (c AuthConfig) checkUnary(ctx context.Context, method string, req any) error {
	p := c.Store.Current()
	if !p.Enabled() {
		return nil
	}
	switch r := req.(type) {
	case *pb.AlarmRequest:
		if r.Action == pb.AlarmRequest_GET {
			_, err := requireUser(ctx, p)
			return err
		}
	case *pb.LeaseGrantRequest, *pb.MemberListRequest, *pb.StatusRequest:
		_, err := requireUser(ctx, p)
		return err
	case *pb.LeaseRevokeRequest:
		// Checked here rather than at apply (etcd checks at apply too):
		// the lessor's own revocations of expired leases carry no user.
		ai, err := requireUser(ctx, p)
		if err != nil {
			return err
		}
		return p.CheckLeaseKeys(ai, r.ID, c.LeaseKeys, true)
	case *pb.LeaseTimeToLiveRequest:
		ai, err := requireUser(ctx, p)
		if err != nil || !r.Keys {
			return err
		}
		return p.CheckLeaseKeys(ai, r.ID, c.LeaseKeys, false)
	case *pb.LeaseLeasesRequest:
		ai, err := requireUser(ctx, p)
		if err != nil {
			return err
		}
		if c.Leases == nil {
			return nil
		}
		for _, id := range c.Leases() {
			if err := p.CheckLeaseKeys(ai, id, c.LeaseKeys, false); err != nil {
				return err
			}
		}
		return nil
	}
	if adminMethods[method] {
		return checkAdmin(ctx, c.Store)
	}
	return nil
}

// AuthInterceptors return the server's auth slot: they resolve the token
// and refuse the calls etcd refuses before they reach the state machine.
// Key permissions of writes are checked at apply, those of reads in the
// backend.
func AuthInterceptors(c AuthConfig) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx = withAuthInfo(ctx, c.Store, c.ClientCertAuth)
		if err := c.checkUnary(ctx, info.FullMethod, req); err != nil {
			return nil, toGRPCError(err)
		}
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ctx := withAuthInfo(ss.Context(), c.Store, c.ClientCertAuth)
		if adminMethods[info.FullMethod] {
			if err := checkAdmin(ctx, c.Store); err != nil {
				return toGRPCError(err)
			}
		}
		return h(srv, &authStream{ServerStream: ss, ctx: ctx, c: c, keepAlive: info.FullMethod == "/etcdserverpb.Lease/LeaseKeepAlive"})
	}
	return unary, stream
}

type authStream struct {
	grpc.ServerStream
	ctx       context.Context
	c         AuthConfig
	keepAlive bool
}

func (s *authStream) Context() context.Context { return s.ctx }

// RecvMsg checks each keep-alive: renewing a lease needs WRITE on its keys.
func (s *authStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if r, ok := m.(*pb.LeaseKeepAliveRequest); ok && s.keepAlive {
		p := s.c.Store.Current()
		if !p.Enabled() {
			return nil
		}
		ai, err := requireUser(s.ctx, p)
		if err == nil {
			err = p.CheckLeaseKeys(ai, r.ID, s.c.LeaseKeys, true)
		}
		if err != nil {
			return toGRPCError(err)
		}
	}
	return nil
}

// WatchPermission is the Watch server's CheckPermission: READ on the
// watched range.
func WatchPermission(as *auth.Store) func(ctx context.Context, key, rangeEnd []byte) error {
	return func(ctx context.Context, key, rangeEnd []byte) error {
		p := as.Current()
		if !p.Enabled() {
			return nil
		}
		ai, err := auth.FromContext(ctx)
		if err != nil {
			return toGRPCError(err)
		}
		if ai == nil {
			ai = &auth.AuthInfo{}
		}
		return toGRPCError(p.IsRangePermitted(ai, key, rangeEnd))
	}
}
