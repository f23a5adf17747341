package apply

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/storage"
)

// applyAuth applies auth requests and, like etcd's authApplierV3, refuses
// requests their user may not make. The decision is taken here, at apply,
// from the replicated auth state as of this entry, with the user and auth
// revision the proposer put in the header: every member decides the same.
func (a *Applier) applyAuth(b storage.Batch, r *pb.InternalRaftRequest) (res Result, after func(), handled bool, err error) {
	as := a.cfg.Auth
	if as == nil {
		return Result{}, nil, false, nil
	}
	p := as.Staged()
	var ai *auth.AuthInfo
	if h := r.GetHeader(); h != nil && (h.Username != "" || h.AuthRevision != 0) {
		ai = &auth.AuthInfo{Username: h.Username, Revision: h.AuthRevision}
	}
	if p.Enabled() {
		if err := a.checkAuth(p, ai, r); err != nil {
			return Result{Err: err}, nil, true, nil
		}
	}
	resp, reqErr, fn, ok, fatal := as.Apply(b, r)
	if !ok {
		return Result{}, nil, false, nil
	}
	if fatal != nil {
		return Result{}, nil, true, fmt.Errorf("apply auth: %w", fatal)
	}
	return Result{Resp: resp, Err: reqErr}, fn, true, nil
}

// checkAuth is etcd's per-request permission check at apply.
func (a *Applier) checkAuth(p auth.Perms, ai *auth.AuthInfo, r *pb.InternalRaftRequest) error {
	if needAdmin(r) {
		return p.IsAdminPermitted(ai)
	}
	switch {
	case r.AuthUserGet != nil:
		if err := p.IsAdminPermitted(ai); err != nil && (ai == nil || r.AuthUserGet.Name != ai.Username) {
			return err
		}
	case r.AuthRoleGet != nil:
		if err := p.IsAdminPermitted(ai); err != nil && (ai == nil || !p.HasRole(ai.Username, r.AuthRoleGet.Role)) {
			return err
		}
	case r.Put != nil:
		return p.CheckPut(ai, r.Put, a.leaseKeys())
	case r.DeleteRange != nil:
		return p.CheckDelete(ai, r.DeleteRange)
	case r.Txn != nil:
		return p.CheckTxn(ai, r.Txn, a.leaseKeys())
	}
	return nil
}

func needAdmin(r *pb.InternalRaftRequest) bool {
	return r.AuthEnable != nil || r.AuthDisable != nil || r.AuthUserAdd != nil ||
		r.AuthUserDelete != nil || r.AuthUserChangePassword != nil || r.AuthUserGrantRole != nil ||
		r.AuthUserRevokeRole != nil || r.AuthRoleAdd != nil || r.AuthRoleGrantPermission != nil ||
		r.AuthRoleRevokePermission != nil || r.AuthRoleDelete != nil || r.AuthUserList != nil ||
		r.AuthRoleList != nil
}

func (a *Applier) leaseKeys() auth.LeaseKeys {
	if a.cfg.Lessor == nil {
		return nil
	}
	return a.cfg.Lessor.Keys
}
