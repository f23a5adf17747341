package backend

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/auth"
)

// authHeader puts who the request runs as into the proposal's header, so
// apply checks its permissions against the auth state of its log position.
func (b *Backend) authHeader(ctx context.Context, r *pb.InternalRaftRequest) error {
	if b.cfg.Auth == nil || r.Authenticate != nil {
		return nil
	}
	ai, err := auth.FromContext(ctx)
	if err != nil {
		return err
	}
	if ai != nil {
		r.Header.Username = ai.Username
		r.Header.AuthRevision = ai.Revision
	}
	return nil
}

// checkRead is etcd's check of a read served locally (Range, read-only
// Txn): a request without a token runs as nobody and is refused.
func (b *Backend) checkRead(ctx context.Context, chk func(auth.Perms, *auth.AuthInfo) error) error {
	if b.cfg.Auth == nil {
		return nil
	}
	p := b.cfg.Auth.Current()
	if !p.Enabled() {
		return nil
	}
	ai, err := auth.FromContext(ctx)
	if err != nil {
		return err
	}
	if ai == nil {
		ai = &auth.AuthInfo{}
	}
	return chk(p, ai)
}

func (b *Backend) checkRange(ctx context.Context, r *pb.RangeRequest) error {
	return b.checkRead(ctx, func(p auth.Perms, ai *auth.AuthInfo) error {
		return p.IsRangePermitted(ai, r.Key, r.RangeEnd)
	})
}

func (b *Backend) checkTxnRead(ctx context.Context, r *pb.TxnRequest) error {
	return b.checkRead(ctx, func(p auth.Perms, ai *auth.AuthInfo) error {
		return p.CheckTxn(ai, r, b.leaseKeys())
	})
}

func (b *Backend) leaseKeys() auth.LeaseKeys {
	if b.cfg.Lessor == nil {
		return nil
	}
	return b.cfg.Lessor.Keys
}

// Auth returns the auth store (nil when none).
func (b *Backend) Auth() *auth.Store { return b.cfg.Auth }

func authCall[T any](b *Backend, ctx context.Context, r *pb.InternalRaftRequest) (T, error) {
	var zero T
	res, err := b.Propose(ctx, r)
	if err != nil {
		return zero, err
	}
	if res.Err != nil {
		return zero, res.Err
	}
	return res.Resp.(T), nil
}

// Authenticate checks the password here, with bcrypt, before proposing
// (the log never holds it), then replicates the token's issue. If the auth
// state changed in between, the check is redone, as etcd does.
func (b *Backend) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	if err := b.LinearizableBarrier(ctx); err != nil {
		return nil, err
	}
	as := b.cfg.Auth
	var resp *pb.AuthenticateResponse
	for range 10 {
		rev, err := as.CheckPassword(r.Name, r.Password)
		if err != nil {
			return nil, err
		}
		prefix, err := as.GenTokenPrefix()
		if err != nil {
			return nil, err
		}
		resp, err = authCall[*pb.AuthenticateResponse](b, ctx, &pb.InternalRaftRequest{
			Authenticate: &pb.InternalAuthenticateRequest{Name: r.Name, SimpleToken: prefix},
		})
		if err != nil {
			return nil, err
		}
		if rev == as.Revision() {
			return resp, nil
		}
	}
	return nil, auth.ErrAuthOldRevision
}

func (b *Backend) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return authCall[*pb.AuthEnableResponse](b, ctx, &pb.InternalRaftRequest{AuthEnable: r})
}

func (b *Backend) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return authCall[*pb.AuthDisableResponse](b, ctx, &pb.InternalRaftRequest{AuthDisable: r})
}

func (b *Backend) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return authCall[*pb.AuthStatusResponse](b, ctx, &pb.InternalRaftRequest{AuthStatus: r})
}

// UserAdd hashes the password before proposing.
func (b *Backend) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	if r.Options == nil || !r.Options.NoPassword {
		h, err := b.cfg.Auth.HashPassword(r.Password)
		if err != nil {
			return nil, err
		}
		r.HashedPassword, r.Password = h, ""
	}
	return authCall[*pb.AuthUserAddResponse](b, ctx, &pb.InternalRaftRequest{AuthUserAdd: r})
}

func (b *Backend) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return authCall[*pb.AuthUserDeleteResponse](b, ctx, &pb.InternalRaftRequest{AuthUserDelete: r})
}

// UserChangePassword hashes the password before proposing.
func (b *Backend) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	h, err := b.cfg.Auth.HashPassword(r.Password)
	if err != nil {
		return nil, err
	}
	r.HashedPassword, r.Password = h, ""
	return authCall[*pb.AuthUserChangePasswordResponse](b, ctx, &pb.InternalRaftRequest{AuthUserChangePassword: r})
}

func (b *Backend) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return authCall[*pb.AuthUserGrantRoleResponse](b, ctx, &pb.InternalRaftRequest{AuthUserGrantRole: r})
}

func (b *Backend) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	return authCall[*pb.AuthUserGetResponse](b, ctx, &pb.InternalRaftRequest{AuthUserGet: r})
}

func (b *Backend) UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	return authCall[*pb.AuthUserListResponse](b, ctx, &pb.InternalRaftRequest{AuthUserList: r})
}

func (b *Backend) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return authCall[*pb.AuthUserRevokeRoleResponse](b, ctx, &pb.InternalRaftRequest{AuthUserRevokeRole: r})
}

func (b *Backend) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	return authCall[*pb.AuthRoleAddResponse](b, ctx, &pb.InternalRaftRequest{AuthRoleAdd: r})
}

func (b *Backend) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	return authCall[*pb.AuthRoleGetResponse](b, ctx, &pb.InternalRaftRequest{AuthRoleGet: r})
}

func (b *Backend) RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	return authCall[*pb.AuthRoleListResponse](b, ctx, &pb.InternalRaftRequest{AuthRoleList: r})
}

func (b *Backend) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return authCall[*pb.AuthRoleDeleteResponse](b, ctx, &pb.InternalRaftRequest{AuthRoleDelete: r})
}

func (b *Backend) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	return authCall[*pb.AuthRoleGrantPermissionResponse](b, ctx, &pb.InternalRaftRequest{AuthRoleGrantPermission: r})
}

func (b *Backend) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return authCall[*pb.AuthRoleRevokePermissionResponse](b, ctx, &pb.InternalRaftRequest{AuthRoleRevokePermission: r})
}
