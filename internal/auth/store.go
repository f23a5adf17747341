package auth

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"go.etcd.io/etcd/api/v3/authpb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
)

const (
	rootUser = "root"
	rootRole = "root"
)

// Engine keys, under storage.PrefixAuth:
//
//	a/enabled       1 byte: 1 when auth is enabled
//	a/revision      8 BE auth revision
//	a/u/<name>      authpb.User (protobuf); Password is the bcrypt hash
//	a/r/<name>      authpb.Role (protobuf); permissions sorted by key
var (
	keyEnabled  = append(append([]byte(nil), storage.PrefixAuth...), "enabled"...)
	keyRevision = append(append([]byte(nil), storage.PrefixAuth...), "revision"...)
	prefixUser  = append(append([]byte(nil), storage.PrefixAuth...), "u/"...)
	prefixRole  = append(append([]byte(nil), storage.PrefixAuth...), "r/"...)
)

func userKey(name string) []byte { return append(append([]byte(nil), prefixUser...), name...) }
func roleKey(name string) []byte { return append(append([]byte(nil), prefixRole...), name...) }

// AuthInfo is who a request runs as: the user and the auth revision its
// token was checked against.
type AuthInfo struct {
	Username string
	Revision uint64
}

// state is one immutable version of the auth data. Changes build a new
// state (copy on write); readers keep using the one they loaded.
type state struct {
	enabled bool
	rev     uint64
	users   map[string]*authpb.User
	roles   map[string]*authpb.Role
	perms   map[string]*userPerms
}

func (st *state) clone() *state {
	return &state{
		enabled: st.enabled,
		rev:     st.rev,
		users:   maps(st.users),
		roles:   maps(st.roles),
		perms:   st.perms,
	}
}

func maps[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (st *state) refresh() {
	st.perms = make(map[string]*userPerms, len(st.users))
	for n, u := range st.users {
		st.perms[n] = mergePerms(u, st.roles)
	}
}

// Options configure a Store.
type Options struct {
	// Tokens issues and checks tokens; nil uses simple tokens with etcd's
	// default TTL.
	Tokens TokenProvider
	// BcryptCost hashes passwords (--bcrypt-cost); 0 is bcrypt's default.
	BcryptCost int
}

// Store is the replicated auth state of one member.
type Store struct {
	tokens TokenProvider
	cost   int

	mu     sync.RWMutex // guards cur and staged
	cur    *state       // committed: what requests are checked against
	staged *state       // apply's pending changes, published after the batch commits
}

// Open loads the auth state from r.
func Open(r storage.Reader, opts Options) (*Store, error) {
	if opts.Tokens == nil {
		opts.Tokens = NewSimpleTokens(SimpleOptions{})
	}
	if opts.BcryptCost == 0 {
		opts.BcryptCost = bcrypt.DefaultCost
	}
	st, err := load(r)
	if err != nil {
		return nil, err
	}
	s := &Store{tokens: opts.Tokens, cost: opts.BcryptCost, cur: st}
	if st.enabled {
		s.tokens.Enable()
	}
	return s, nil
}

// Reload replaces the state with what r holds, after a Raft snapshot
// replaced the engine's contents. Tokens stay valid only if the auth
// revision they carry is still current, as after any auth change.
func (s *Store) Reload(r storage.Reader) error {
	st, err := load(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	wasEnabled := s.cur.enabled
	s.cur, s.staged = st, nil
	s.mu.Unlock()
	switch {
	case st.enabled && !wasEnabled:
		s.tokens.Enable()
	case !st.enabled && wasEnabled:
		s.tokens.Disable()
	}
	return nil
}

func load(r storage.Reader) (*state, error) {
	st := &state{users: map[string]*authpb.User{}, roles: map[string]*authpb.Role{}}
	if v, err := r.Get(keyEnabled); err == nil {
		st.enabled = len(v) == 1 && v[0] == 1
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("auth: read enabled: %w", err)
	}
	if v, err := r.Get(keyRevision); err == nil {
		if len(v) != 8 {
			return nil, fmt.Errorf("auth: revision record has %d bytes", len(v))
		}
		st.rev = binary.BigEndian.Uint64(v)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("auth: read revision: %w", err)
	}
	if err := scan(r, prefixUser, func(v []byte) error {
		u := &authpb.User{}
		if err := proto.Unmarshal(v, u); err != nil {
			return err
		}
		st.users[string(u.Name)] = u
		return nil
	}); err != nil {
		return nil, fmt.Errorf("auth: load users: %w", err)
	}
	if err := scan(r, prefixRole, func(v []byte) error {
		ro := &authpb.Role{}
		if err := proto.Unmarshal(v, ro); err != nil {
			return err
		}
		st.roles[string(ro.Name)] = ro
		return nil
	}); err != nil {
		return nil, fmt.Errorf("auth: load roles: %w", err)
	}
	st.refresh()
	return st, nil
}

func scan(r storage.Reader, prefix []byte, fn func(v []byte) error) error {
	it, err := r.NewIter(storage.IterOptions{LowerBound: prefix, UpperBound: storage.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

func (s *Store) current() *state {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

// IsAuthEnabled reports whether auth is enabled.
func (s *Store) IsAuthEnabled() bool { return s.current().enabled }

// Revision returns the committed auth revision.
func (s *Store) Revision() uint64 { return s.current().rev }

// BcryptCost is the cost new password hashes use.
func (s *Store) BcryptCost() int { return s.cost }

// HashPassword returns the base64 bcrypt hash of password, as etcd sends
// it through Raft (so the log never holds the password itself).
func (s *Store) HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	return base64.StdEncoding.EncodeToString(h), nil
}

// CheckPassword checks a user's password against the committed state and
// returns the auth revision it was checked at.
func (s *Store) CheckPassword(name, password string) (uint64, error) {
	st := s.current()
	if !st.enabled {
		return 0, ErrAuthNotEnabled
	}
	u := st.users[name]
	if u == nil {
		return 0, ErrAuthFailed
	}
	if u.Options != nil && u.Options.NoPassword {
		return 0, ErrNoPasswordUser
	}
	if bcrypt.CompareHashAndPassword(u.Password, []byte(password)) != nil {
		return 0, ErrAuthFailed
	}
	return st.rev, nil
}

// GenTokenPrefix returns the random part of a new simple token, chosen
// before the Authenticate request is proposed.
func (s *Store) GenTokenPrefix() (string, error) { return s.tokens.GenTokenPrefix() }

// AuthInfoFromToken resolves a token; nil, nil when auth is disabled.
func (s *Store) AuthInfoFromToken(token string) (*AuthInfo, error) {
	st := s.current()
	if !st.enabled {
		return nil, nil
	}
	ai, ok := s.tokens.Info(token, st.rev)
	if !ok {
		return nil, ErrInvalidAuthToken
	}
	return ai, nil
}

// Perms checks permissions against one version of the state.
type Perms struct{ st *state }

// Current returns the committed state's checker (request paths).
func (s *Store) Current() Perms { return Perms{s.current()} }

// Staged returns the checker apply uses: it sees the changes of earlier
// entries of the batch being applied. Only the apply goroutine calls it.
func (s *Store) Staged() Perms {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.staged != nil {
		return Perms{s.staged}
	}
	return Perms{s.cur}
}

// Enabled reports whether auth is enabled in this state.
func (p Perms) Enabled() bool { return p.st.enabled }

// Revision is this state's auth revision.
func (p Perms) Revision() uint64 { return p.st.rev }

func (p Perms) isOpPermitted(ai *AuthInfo, key, rangeEnd []byte, write bool) error {
	st := p.st
	if !st.enabled {
		return nil
	}
	if ai == nil || ai.Revision == 0 {
		return ErrUserEmpty
	}
	if ai.Revision < st.rev {
		return ErrAuthOldRevision
	}
	u := st.users[ai.Username]
	if u == nil {
		return ErrPermissionDenied
	}
	if hasRootRole(u) {
		return nil
	}
	up := st.perms[ai.Username]
	if up == nil {
		return ErrPermissionDenied
	}
	spans := up.read
	if write {
		spans = up.write
	}
	if covers(spans, key, rangeEnd) {
		return nil
	}
	return ErrPermissionDenied
}

// IsPutPermitted checks WRITE on key.
func (p Perms) IsPutPermitted(ai *AuthInfo, key []byte) error {
	return p.isOpPermitted(ai, key, nil, true)
}

// IsRangePermitted checks READ on [key, rangeEnd).
func (p Perms) IsRangePermitted(ai *AuthInfo, key, rangeEnd []byte) error {
	return p.isOpPermitted(ai, key, rangeEnd, false)
}

// IsDeleteRangePermitted checks WRITE on [key, rangeEnd).
func (p Perms) IsDeleteRangePermitted(ai *AuthInfo, key, rangeEnd []byte) error {
	return p.isOpPermitted(ai, key, rangeEnd, true)
}

// IsAdminPermitted checks that the user has the root role. Like etcd, it
// does not look at the token's revision.
func (p Perms) IsAdminPermitted(ai *AuthInfo) error {
	if !p.st.enabled {
		return nil
	}
	if ai == nil || ai.Username == "" {
		return ErrUserEmpty
	}
	u := p.st.users[ai.Username]
	if u == nil {
		return ErrUserNotFound
	}
	if !hasRootRole(u) {
		return ErrPermissionDenied
	}
	return nil
}

// HasRole reports whether user has role.
func (p Perms) HasRole(user, role string) bool {
	u := p.st.users[user]
	return u != nil && slices.Contains(u.Roles, role)
}

// IsPutPermitted and friends check against the committed state.
func (s *Store) IsPutPermitted(ai *AuthInfo, key []byte) error {
	return s.Current().IsPutPermitted(ai, key)
}

// IsRangePermitted checks READ on [key, rangeEnd) against the committed state.
func (s *Store) IsRangePermitted(ai *AuthInfo, key, rangeEnd []byte) error {
	return s.Current().IsRangePermitted(ai, key, rangeEnd)
}

// IsDeleteRangePermitted checks WRITE on [key, rangeEnd) against the committed state.
func (s *Store) IsDeleteRangePermitted(ai *AuthInfo, key, rangeEnd []byte) error {
	return s.Current().IsDeleteRangePermitted(ai, key, rangeEnd)
}

// IsAdminPermitted checks the root role against the committed state.
func (s *Store) IsAdminPermitted(ai *AuthInfo) error { return s.Current().IsAdminPermitted(ai) }

func hasRootRole(u *authpb.User) bool { return slices.Contains(u.Roles, rootRole) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
