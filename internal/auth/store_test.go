package auth

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"

	"github.com/metastore/metastore/internal/clock"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

// apply applies r in its own batch, as the applier does, and returns the
// response or the request error.
func apply(t *testing.T, s *Store, eng storage.Engine, r *pb.InternalRaftRequest) (any, error) {
	t.Helper()
	b := eng.NewBatch()
	defer b.Close()
	resp, reqErr, after, handled, fatal := s.Apply(b, r)
	if !handled || fatal != nil {
		t.Fatalf("apply %v: handled=%v fatal=%v", r, handled, fatal)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	if after != nil {
		after()
	}
	return resp, reqErr
}

func mustApply(t *testing.T, s *Store, eng storage.Engine, r *pb.InternalRaftRequest) any {
	t.Helper()
	resp, err := apply(t, s, eng, r)
	if err != nil {
		t.Fatalf("apply %v: %v", r, err)
	}
	return resp
}

func newStore(t *testing.T, eng storage.Engine, tp TokenProvider) *Store {
	t.Helper()
	s, err := Open(eng, Options{Tokens: tp, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func addUser(t *testing.T, s *Store, eng storage.Engine, name, pw string) {
	t.Helper()
	h, err := s.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, eng, &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: name, HashedPassword: h}})
}

// setup creates root (with the root role) and user "u" with role "r"
// granted perms, then enables auth.
func setup(t *testing.T, eng storage.Engine, tp TokenProvider, perms ...*authpb.Permission) *Store {
	t.Helper()
	s := newStore(t, eng, tp)
	addUser(t, s, eng, "root", "rootpw")
	mustApply(t, s, eng, &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}})
	addUser(t, s, eng, "u", "upw")
	mustApply(t, s, eng, &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r"}})
	for _, p := range perms {
		mustApply(t, s, eng, &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: p}})
	}
	mustApply(t, s, eng, &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "u", Role: "r"}})
	mustApply(t, s, eng, &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}})
	return s
}

func TestEnableNeedsRoot(t *testing.T) {
	eng := memory.New()
	s := newStore(t, eng, nil)
	if _, err := apply(t, s, eng, &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}}); !errors.Is(err, ErrRootUserNotExist) {
		t.Fatalf("enable without root: %v", err)
	}
	addUser(t, s, eng, "root", "pw")
	if _, err := apply(t, s, eng, &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}}); !errors.Is(err, ErrRootRoleNotExist) {
		t.Fatalf("enable without root role: %v", err)
	}
	mustApply(t, s, eng, &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}})
	mustApply(t, s, eng, &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}})
	if !s.IsAuthEnabled() {
		t.Fatal("not enabled")
	}
	if _, err := apply(t, s, eng, &pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "root"}}); !errors.Is(err, ErrInvalidAuthMgmt) {
		t.Fatalf("delete root while enabled: %v", err)
	}
	if _, err := apply(t, s, eng, &pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "root", Role: "root"}}); !errors.Is(err, ErrInvalidAuthMgmt) {
		t.Fatalf("revoke root role while enabled: %v", err)
	}
	if _, err := apply(t, s, eng, &pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "root"}}); !errors.Is(err, ErrInvalidAuthMgmt) {
		t.Fatalf("delete root role while enabled: %v", err)
	}
}

func TestPersistAcrossReload(t *testing.T) {
	eng := memory.New()
	s := setup(t, eng, nil, &authpb.Permission{PermType: authpb.Permission_READ, Key: []byte("a"), RangeEnd: []byte("b")})
	rev := s.Revision()
	s2 := newStore(t, eng, nil)
	if !s2.IsAuthEnabled() || s2.Revision() != rev {
		t.Fatalf("reloaded enabled=%v rev=%d, want true %d", s2.IsAuthEnabled(), s2.Revision(), rev)
	}
	if _, err := s2.CheckPassword("u", "upw"); err != nil {
		t.Fatalf("password after reload: %v", err)
	}
	if _, err := s2.CheckPassword("u", "wrong"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	ai := &AuthInfo{Username: "u", Revision: rev}
	if err := s2.IsRangePermitted(ai, []byte("a1"), nil); err != nil {
		t.Fatalf("read after reload: %v", err)
	}
	if err := s2.IsPutPermitted(ai, []byte("a1")); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("write after reload: %v", err)
	}
	resp := mustApply(t, s2, eng, &pb.InternalRaftRequest{AuthRoleList: &pb.AuthRoleListRequest{}}).(*pb.AuthRoleListResponse)
	if len(resp.Roles) != 1 || resp.Roles[0] != "r" {
		t.Fatalf("roles %v", resp.Roles)
	}
}

func TestPermissionRanges(t *testing.T) {
	eng := memory.New()
	s := setup(t, eng, nil,
		&authpb.Permission{PermType: authpb.Permission_READWRITE, Key: []byte("k")},                           // one key
		&authpb.Permission{PermType: authpb.Permission_READ, Key: []byte("p/"), RangeEnd: []byte("p0")},       // prefix p/
		&authpb.Permission{PermType: authpb.Permission_READ, Key: []byte("p0"), RangeEnd: []byte("p5")},       // adjacent
		&authpb.Permission{PermType: authpb.Permission_WRITE, Key: []byte("z"), RangeEnd: []byte{0}},          // from z on
		&authpb.Permission{PermType: authpb.Permission_READ, Key: []byte{0x00, 0xff}, RangeEnd: []byte{0x01}}, // binary
	)
	ai := &AuthInfo{Username: "u", Revision: s.Revision()}
	tests := []struct {
		name      string
		write     bool
		key, end  []byte
		permitted bool
	}{
		{"single key read", false, []byte("k"), nil, true},
		{"single key write", true, []byte("k"), nil, true},
		{"other key", false, []byte("k2"), nil, false},
		{"range over single key", false, []byte("k"), []byte("k\x00"), true},
		{"range past single key", false, []byte("k"), []byte("l"), false},
		{"in prefix", false, []byte("p/x"), nil, true},
		{"whole prefix", false, []byte("p/"), []byte("p0"), true},
		{"prefix joined with adjacent", false, []byte("p/a"), []byte("p4"), true},
		{"beyond adjacent", false, []byte("p/a"), []byte("p6"), false},
		{"prefix is read only", true, []byte("p/x"), nil, false},
		{"from-key write", true, []byte("zz"), []byte{0}, true},
		{"from-key inside", true, []byte("z"), []byte("zzz"), true},
		{"from-key starts before", true, []byte("y"), []byte{0}, false},
		{"from-key no read", false, []byte("zz"), nil, false},
		{"binary key", false, []byte{0x00, 0xff, 0x01}, nil, true},
		{"all keys", false, []byte{0}, []byte{0}, false},
	}
	for _, tc := range tests {
		var err error
		if tc.write {
			err = s.IsDeleteRangePermitted(ai, tc.key, tc.end)
		} else {
			err = s.IsRangePermitted(ai, tc.key, tc.end)
		}
		if (err == nil) != tc.permitted {
			t.Errorf("%s: err=%v, want permitted=%v", tc.name, err, tc.permitted)
		}
	}
	root := &AuthInfo{Username: "root", Revision: s.Revision()}
	if err := s.IsRangePermitted(root, []byte{0}, []byte{0}); err != nil {
		t.Errorf("root reads everything: %v", err)
	}
	if err := s.IsAdminPermitted(ai); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("user is not admin: %v", err)
	}
	if err := s.IsAdminPermitted(root); err != nil {
		t.Errorf("root is admin: %v", err)
	}
	if err := s.IsRangePermitted(nil, []byte("k"), nil); !errors.Is(err, ErrUserEmpty) {
		t.Errorf("no user: %v", err)
	}
	if _, err := apply(t, s, eng, &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{
		Name: "r", Perm: &authpb.Permission{Key: []byte("b"), RangeEnd: []byte("a")}}}); !errors.Is(err, ErrInvalidAuthMgmt) {
		t.Errorf("inverted range: %v", err)
	}
}

func TestStaleRevision(t *testing.T) {
	eng := memory.New()
	s := setup(t, eng, nil, &authpb.Permission{PermType: authpb.Permission_READWRITE, Key: []byte("k")})
	old := &AuthInfo{Username: "u", Revision: s.Revision()}
	if err := s.IsPutPermitted(old, []byte("k")); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, eng, &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "other"}})
	if err := s.IsPutPermitted(old, []byte("k")); !errors.Is(err, ErrAuthOldRevision) {
		t.Fatalf("stale token: %v", err)
	}
	// Within a batch, a later entry sees the earlier entry's change before
	// anything is published.
	b := eng.NewBatch()
	defer b.Close()
	_, _, after, _, _ := s.Apply(b, &pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("k")}})
	cur := &AuthInfo{Username: "u", Revision: s.Revision() + 1}
	if err := s.Staged().IsPutPermitted(cur, []byte("k")); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("staged view: %v", err)
	}
	if err := s.Current().IsPutPermitted(&AuthInfo{Username: "u", Revision: s.Revision()}, []byte("k")); err != nil {
		t.Fatalf("published before commit: %v", err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	after()
	if err := s.IsPutPermitted(cur, []byte("k")); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("after commit: %v", err)
	}
}

func TestSimpleTokenExpiry(t *testing.T) {
	clk := clock.NewFakeAt(time.Unix(1000, 0))
	tp := NewSimpleTokens(SimpleOptions{TTL: 10 * time.Second, Now: clk.Now})
	eng := memory.New()
	s := setup(t, eng, tp)
	prefix, err := s.GenTokenPrefix()
	if err != nil || len(prefix) != 16 {
		t.Fatalf("prefix %q %v", prefix, err)
	}
	resp := mustApply(t, s, eng, &pb.InternalRaftRequest{
		Header:       &pb.RequestHeader{ID: 7},
		Authenticate: &pb.InternalAuthenticateRequest{Name: "u", SimpleToken: prefix},
	}).(*pb.AuthenticateResponse)
	if resp.Token != prefix+".7" {
		t.Fatalf("token %q", resp.Token)
	}
	ai, err := s.AuthInfoFromToken(resp.Token)
	if err != nil || ai.Username != "u" || ai.Revision != s.Revision() {
		t.Fatalf("info %+v %v", ai, err)
	}
	clk.Advance(9 * time.Second) // use extends the life
	if _, err := s.AuthInfoFromToken(resp.Token); err != nil {
		t.Fatal(err)
	}
	clk.Advance(9 * time.Second)
	if _, err := s.AuthInfoFromToken(resp.Token); err != nil {
		t.Fatalf("token used 9 s ago expired: %v", err)
	}
	clk.Advance(10 * time.Second)
	if _, err := s.AuthInfoFromToken(resp.Token); !errors.Is(err, ErrInvalidAuthToken) {
		t.Fatalf("expired token: %v", err)
	}
	if _, err := s.AuthInfoFromToken("bogus"); !errors.Is(err, ErrInvalidAuthToken) {
		t.Fatalf("bogus token: %v", err)
	}
	// A password change invalidates the user's tokens.
	resp = mustApply(t, s, eng, &pb.InternalRaftRequest{
		Header:       &pb.RequestHeader{ID: 8},
		Authenticate: &pb.InternalAuthenticateRequest{Name: "u", SimpleToken: prefix},
	}).(*pb.AuthenticateResponse)
	h, _ := s.HashPassword("new")
	mustApply(t, s, eng, &pb.InternalRaftRequest{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "u", HashedPassword: h}})
	if _, err := s.AuthInfoFromToken(resp.Token); !errors.Is(err, ErrInvalidAuthToken) {
		t.Fatalf("token after password change: %v", err)
	}
}
