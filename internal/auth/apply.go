package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
)

var rootPerm = &authpb.Permission{PermType: authpb.Permission_READWRITE, Key: []byte{}, RangeEnd: []byte{0}}

// tx is one applied auth request: it changes the staged state and stages
// the same change into the batch.
type tx struct {
	s       *Store
	b       storage.Batch
	st      *state
	effects []func() // token provider changes, after commit
	changed bool
}

func (s *Store) begin(b storage.Batch) *tx {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.staged == nil {
		s.staged = s.cur.clone()
	}
	return &tx{s: s, b: b, st: s.staged}
}

// after publishes the staged state once the batch is durable, then runs the
// token changes.
func (t *tx) after() func() {
	if !t.changed && len(t.effects) == 0 {
		return nil
	}
	s, effects := t.s, t.effects
	return func() {
		s.mu.Lock()
		if s.staged != nil {
			s.cur = s.staged
			s.staged = nil
		}
		s.mu.Unlock()
		for _, fn := range effects {
			fn()
		}
	}
}

func (t *tx) bumpRevision() error {
	t.st.rev++
	t.changed = true
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, t.st.rev)
	if err := t.b.Set(keyRevision, v); err != nil {
		return fmt.Errorf("%w: stage revision: %v", ErrStorage, err)
	}
	return nil
}

func (t *tx) putUser(u *authpb.User) error {
	t.st.users[string(u.Name)] = u
	v, err := proto.Marshal(u)
	if err != nil {
		return fmt.Errorf("%w: encode user: %v", ErrStorage, err)
	}
	if err := t.b.Set(userKey(string(u.Name)), v); err != nil {
		return fmt.Errorf("%w: stage user: %v", ErrStorage, err)
	}
	return nil
}

func (t *tx) putRole(r *authpb.Role) error {
	t.st.roles[string(r.Name)] = r
	v, err := proto.Marshal(r)
	if err != nil {
		return fmt.Errorf("%w: encode role: %v", ErrStorage, err)
	}
	if err := t.b.Set(roleKey(string(r.Name)), v); err != nil {
		return fmt.Errorf("%w: stage role: %v", ErrStorage, err)
	}
	return nil
}

// commit bumps the revision and rebuilds the permission cache.
func (t *tx) commit() error {
	t.st.refresh()
	return t.bumpRevision()
}

// Apply applies the auth request in r, if it holds one, staging its
// persistent effect into b. It returns the response or the request's
// error, the in-memory effect to run once b is committed, and handled=false
// when r is not an auth request. A non-nil fatal error (ErrStorage) means
// the batch cannot be trusted.
func (s *Store) Apply(b storage.Batch, r *pb.InternalRaftRequest) (resp any, reqErr error, after func(), handled bool, fatal error) {
	if !IsAuthRequest(r) {
		return nil, nil, nil, false, nil
	}
	t := s.begin(b)
	hdr := &pb.ResponseHeader{}
	var err error
	switch {
	case r.AuthEnable != nil:
		err = t.enable()
		resp = &pb.AuthEnableResponse{Header: hdr}
	case r.AuthDisable != nil:
		err = t.disable()
		resp = &pb.AuthDisableResponse{Header: hdr}
	case r.AuthStatus != nil:
		resp = &pb.AuthStatusResponse{Header: hdr, Enabled: t.st.enabled, AuthRevision: t.st.rev}
	case r.Authenticate != nil:
		var tok string
		var id uint64
		if r.Header != nil {
			id = r.Header.ID
		}
		tok, err = t.authenticate(r.Authenticate, id)
		resp = &pb.AuthenticateResponse{Header: hdr, Token: tok}
	case r.AuthUserAdd != nil:
		err = t.userAdd(r.AuthUserAdd)
		resp = &pb.AuthUserAddResponse{Header: hdr}
	case r.AuthUserDelete != nil:
		err = t.userDelete(r.AuthUserDelete.Name)
		resp = &pb.AuthUserDeleteResponse{Header: hdr}
	case r.AuthUserChangePassword != nil:
		err = t.userChangePassword(r.AuthUserChangePassword)
		resp = &pb.AuthUserChangePasswordResponse{Header: hdr}
	case r.AuthUserGrantRole != nil:
		err = t.userGrantRole(r.AuthUserGrantRole.User, r.AuthUserGrantRole.Role)
		resp = &pb.AuthUserGrantRoleResponse{Header: hdr}
	case r.AuthUserGet != nil:
		u := t.st.users[r.AuthUserGet.Name]
		if u == nil {
			err = ErrUserNotFound
		}
		gr := &pb.AuthUserGetResponse{Header: hdr}
		if u != nil {
			gr.Roles = append(gr.Roles, u.Roles...)
		}
		resp = gr
	case r.AuthUserList != nil:
		resp = &pb.AuthUserListResponse{Header: hdr, Users: sortedKeys(t.st.users)}
	case r.AuthUserRevokeRole != nil:
		err = t.userRevokeRole(r.AuthUserRevokeRole.Name, r.AuthUserRevokeRole.Role)
		resp = &pb.AuthUserRevokeRoleResponse{Header: hdr}
	case r.AuthRoleAdd != nil:
		err = t.roleAdd(r.AuthRoleAdd.Name)
		resp = &pb.AuthRoleAddResponse{Header: hdr}
	case r.AuthRoleGet != nil:
		gr := &pb.AuthRoleGetResponse{Header: hdr}
		ro := t.st.roles[r.AuthRoleGet.Role]
		switch {
		case ro == nil:
			err = ErrRoleNotFound
		case r.AuthRoleGet.Role == rootRole:
			gr.Perm = []*authpb.Permission{rootPerm}
		default:
			gr.Perm = append(gr.Perm, ro.KeyPermission...)
		}
		resp = gr
	case r.AuthRoleList != nil:
		resp = &pb.AuthRoleListResponse{Header: hdr, Roles: sortedKeys(t.st.roles)}
	case r.AuthRoleDelete != nil:
		err = t.roleDelete(r.AuthRoleDelete.Role)
		resp = &pb.AuthRoleDeleteResponse{Header: hdr}
	case r.AuthRoleGrantPermission != nil:
		err = t.roleGrantPermission(r.AuthRoleGrantPermission)
		resp = &pb.AuthRoleGrantPermissionResponse{Header: hdr}
	case r.AuthRoleRevokePermission != nil:
		rp := r.AuthRoleRevokePermission
		err = t.roleRevokePermission(rp.Role, rp.Key, rp.RangeEnd)
		resp = &pb.AuthRoleRevokePermissionResponse{Header: hdr}
	default:
		return nil, nil, nil, false, nil
	}
	after = t.after()
	if err != nil {
		if isFatal(err) {
			return nil, nil, nil, true, err
		}
		return nil, err, after, true, nil
	}
	return resp, nil, after, true, nil
}

func isFatal(err error) bool { return errors.Is(err, ErrStorage) }

func (t *tx) enable() error {
	if t.st.enabled {
		return nil
	}
	u := t.st.users[rootUser]
	if u == nil {
		return ErrRootUserNotExist
	}
	if !hasRootRole(u) {
		return ErrRootRoleNotExist
	}
	t.st.enabled = true
	t.changed = true
	if err := t.b.Set(keyEnabled, []byte{1}); err != nil {
		return fmt.Errorf("%w: stage enabled: %v", ErrStorage, err)
	}
	tp := t.s.tokens
	t.effects = append(t.effects, tp.Enable)
	return nil
}

func (t *tx) disable() error {
	if !t.st.enabled {
		return nil
	}
	t.st.enabled = false
	t.changed = true
	if err := t.b.Set(keyEnabled, []byte{0}); err != nil {
		return fmt.Errorf("%w: stage enabled: %v", ErrStorage, err)
	}
	tp := t.s.tokens
	t.effects = append(t.effects, tp.Disable)
	return t.bumpRevision()
}

func (t *tx) authenticate(r *pb.InternalAuthenticateRequest, id uint64) (string, error) {
	if !t.st.enabled {
		return "", ErrAuthNotEnabled
	}
	u := t.st.users[r.Name]
	if u == nil || (u.Options != nil && u.Options.NoPassword) {
		return "", ErrAuthFailed
	}
	// The password was checked before proposing; the entry carries the
	// token's random part so every member registers the same token.
	tok, register, err := t.s.tokens.Assign(r.Name, t.st.rev, r.SimpleToken+"."+strconv.FormatUint(id, 10))
	if err != nil {
		return "", err
	}
	if register != nil {
		t.effects = append(t.effects, register)
	}
	return tok, nil
}

func (t *tx) password(plain, hashed string) ([]byte, error) {
	if plain != "" && hashed == "" {
		// Entries from etcd before 3.5 carry the plain password.
		return bcrypt.GenerateFromPassword([]byte(plain), t.s.cost)
	}
	return base64.StdEncoding.DecodeString(hashed)
}

func (t *tx) userAdd(r *pb.AuthUserAddRequest) error {
	if r.Name == "" {
		return ErrUserEmpty
	}
	if t.st.users[r.Name] != nil {
		return ErrUserAlreadyExist
	}
	opts := r.Options
	if opts == nil {
		opts = &authpb.UserAddOptions{}
	}
	var pw []byte
	if !opts.NoPassword {
		var err error
		if pw, err = t.password(r.Password, r.HashedPassword); err != nil {
			return ErrNoPasswordUser
		}
	}
	if err := t.putUser(&authpb.User{Name: []byte(r.Name), Password: pw, Options: opts}); err != nil {
		return err
	}
	return t.commit()
}

func (t *tx) userDelete(name string) error {
	if t.st.enabled && name == rootUser {
		return ErrInvalidAuthMgmt
	}
	if t.st.users[name] == nil {
		return ErrUserNotFound
	}
	delete(t.st.users, name)
	if err := t.b.Delete(userKey(name)); err != nil {
		return fmt.Errorf("%w: stage user delete: %v", ErrStorage, err)
	}
	tp := t.s.tokens
	t.effects = append(t.effects, func() { tp.InvalidateUser(name) })
	return t.commit()
}

func (t *tx) userChangePassword(r *pb.AuthUserChangePasswordRequest) error {
	u := t.st.users[r.Name]
	if u == nil {
		return ErrUserNotFound
	}
	var pw []byte
	if u.Options == nil || !u.Options.NoPassword {
		var err error
		if pw, err = t.password(r.Password, r.HashedPassword); err != nil {
			return ErrNoPasswordUser
		}
	}
	nu := &authpb.User{Name: u.Name, Roles: u.Roles, Password: pw, Options: u.Options}
	if err := t.putUser(nu); err != nil {
		return err
	}
	tp, name := t.s.tokens, r.Name
	t.effects = append(t.effects, func() { tp.InvalidateUser(name) })
	return t.commit()
}

func (t *tx) userGrantRole(user, role string) error {
	u := t.st.users[user]
	if u == nil {
		return ErrUserNotFound
	}
	if role != rootRole && t.st.roles[role] == nil {
		return ErrRoleNotFound
	}
	i := sort.SearchStrings(u.Roles, role)
	if i < len(u.Roles) && u.Roles[i] == role {
		return nil // already granted: no change, no new revision
	}
	roles := append(append([]string(nil), u.Roles...), role)
	sort.Strings(roles)
	if err := t.putUser(&authpb.User{Name: u.Name, Password: u.Password, Options: u.Options, Roles: roles}); err != nil {
		return err
	}
	return t.commit()
}

func (t *tx) userRevokeRole(user, role string) error {
	if t.st.enabled && user == rootUser && role == rootRole {
		return ErrInvalidAuthMgmt
	}
	u := t.st.users[user]
	if u == nil {
		return ErrUserNotFound
	}
	nu := &authpb.User{Name: u.Name, Password: u.Password, Options: u.Options}
	for _, r := range u.Roles {
		if r != role {
			nu.Roles = append(nu.Roles, r)
		}
	}
	if len(nu.Roles) == len(u.Roles) {
		return ErrRoleNotGranted
	}
	if err := t.putUser(nu); err != nil {
		return err
	}
	return t.commit()
}

func (t *tx) roleAdd(name string) error {
	if name == "" {
		return ErrRoleEmpty
	}
	if t.st.roles[name] != nil {
		return ErrRoleAlreadyExist
	}
	if err := t.putRole(&authpb.Role{Name: []byte(name)}); err != nil {
		return err
	}
	return t.commit()
}

func (t *tx) roleDelete(name string) error {
	if t.st.enabled && name == rootRole {
		return ErrInvalidAuthMgmt
	}
	if t.st.roles[name] == nil {
		return ErrRoleNotFound
	}
	delete(t.st.roles, name)
	if err := t.b.Delete(roleKey(name)); err != nil {
		return fmt.Errorf("%w: stage role delete: %v", ErrStorage, err)
	}
	for _, un := range sortedKeys(t.st.users) {
		u := t.st.users[un]
		nu := &authpb.User{Name: u.Name, Password: u.Password, Options: u.Options}
		for _, r := range u.Roles {
			if r != name {
				nu.Roles = append(nu.Roles, r)
			}
		}
		if len(nu.Roles) == len(u.Roles) {
			continue
		}
		if err := t.putUser(nu); err != nil {
			return err
		}
	}
	return t.commit()
}

func (t *tx) roleGrantPermission(r *pb.AuthRoleGrantPermissionRequest) error {
	if r.Perm == nil {
		return ErrPermissionNotGiven
	}
	if !validPermRange(r.Perm.Key, r.Perm.RangeEnd) {
		return ErrInvalidAuthMgmt
	}
	ro := t.st.roles[r.Name]
	if ro == nil {
		return ErrRoleNotFound
	}
	perms := make([]*authpb.Permission, 0, len(ro.KeyPermission)+1)
	updated := false
	for _, p := range ro.KeyPermission {
		if bytes.Equal(p.Key, r.Perm.Key) && bytes.Equal(p.RangeEnd, r.Perm.RangeEnd) {
			p = &authpb.Permission{Key: p.Key, RangeEnd: p.RangeEnd, PermType: r.Perm.PermType}
			updated = true
		}
		perms = append(perms, p)
	}
	if !updated {
		perms = append(perms, &authpb.Permission{Key: r.Perm.Key, RangeEnd: r.Perm.RangeEnd, PermType: r.Perm.PermType})
		sort.SliceStable(perms, func(i, j int) bool { return bytes.Compare(perms[i].Key, perms[j].Key) < 0 })
	}
	if err := t.putRole(&authpb.Role{Name: ro.Name, KeyPermission: perms}); err != nil {
		return err
	}
	return t.commit()
}

func (t *tx) roleRevokePermission(role string, key, rangeEnd []byte) error {
	ro := t.st.roles[role]
	if ro == nil {
		return ErrRoleNotFound
	}
	nr := &authpb.Role{Name: ro.Name}
	for _, p := range ro.KeyPermission {
		if !bytes.Equal(p.Key, key) || !bytes.Equal(p.RangeEnd, rangeEnd) {
			nr.KeyPermission = append(nr.KeyPermission, p)
		}
	}
	if len(nr.KeyPermission) == len(ro.KeyPermission) {
		return ErrPermissionNotGranted
	}
	if err := t.putRole(nr); err != nil {
		return err
	}
	return t.commit()
}

// IsAuthRequest reports whether r is one of the Auth service's requests.
func IsAuthRequest(r *pb.InternalRaftRequest) bool {
	return r.AuthEnable != nil || r.AuthDisable != nil || r.AuthStatus != nil || r.Authenticate != nil ||
		r.AuthUserAdd != nil || r.AuthUserDelete != nil || r.AuthUserChangePassword != nil ||
		r.AuthUserGrantRole != nil || r.AuthUserGet != nil || r.AuthUserList != nil || r.AuthUserRevokeRole != nil ||
		r.AuthRoleAdd != nil || r.AuthRoleGet != nil || r.AuthRoleList != nil || r.AuthRoleDelete != nil ||
		r.AuthRoleGrantPermission != nil || r.AuthRoleRevokePermission != nil
}
