package auth

import (
	"crypto/rand"
	"math/big"
	"strings"
	"sync"
	"time"
)

// TokenProvider issues and resolves tokens.
type TokenProvider interface {
	// GenTokenPrefix returns a random string the proposer puts in the
	// Authenticate entry (simple tokens are built from it).
	GenTokenPrefix() (string, error)
	// Assign returns the token for user at auth revision rev, called at
	// apply on every member; register (may be nil) makes it valid after the
	// batch commits.
	Assign(user string, rev uint64, simple string) (token string, register func(), err error)
	// Info resolves a token; rev is the store's current revision.
	Info(token string, rev uint64) (*AuthInfo, bool)
	InvalidateUser(user string)
	Enable()
	Disable()
}

// DefaultSimpleTokenTTL is etcd's --auth-token-ttl default.
const DefaultSimpleTokenTTL = 300 * time.Second

// SimpleOptions configure simple tokens.
type SimpleOptions struct {
	TTL time.Duration // 0: DefaultSimpleTokenTTL
	Now func() time.Time
}

type simpleEntry struct {
	user    string
	expires time.Time
}

// SimpleTokens are etcd's "simple" tokens: random strings known only to the
// members that applied the Authenticate entry, valid for TTL after their
// last use.
type SimpleTokens struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex // guards enabled and tokens
	enabled bool
	tokens  map[string]simpleEntry
}

// NewSimpleTokens returns a simple token provider.
func NewSimpleTokens(o SimpleOptions) *SimpleTokens {
	if o.TTL <= 0 {
		o.TTL = DefaultSimpleTokenTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &SimpleTokens{ttl: o.TTL, now: o.Now, tokens: map[string]simpleEntry{}}
}

const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// GenTokenPrefix returns 16 random letters, like etcd.
func (t *SimpleTokens) GenTokenPrefix() (string, error) {
	var b strings.Builder
	for range 16 {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(letters))))
		if err != nil {
			return "", err
		}
		b.WriteByte(letters[n.Int64()])
	}
	return b.String(), nil
}

// Assign makes simple the user's token.
func (t *SimpleTokens) Assign(user string, _ uint64, simple string) (string, func(), error) {
	return simple, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.enabled {
			return
		}
		t.pruneLocked()
		t.tokens[simple] = simpleEntry{user: user, expires: t.now().Add(t.ttl)}
	}, nil
}

func (t *SimpleTokens) pruneLocked() {
	now := t.now()
	for k, e := range t.tokens {
		if !now.Before(e.expires) {
			delete(t.tokens, k)
		}
	}
}

// Info resolves a token and extends its life. Simple tokens carry no
// revision: the request runs at the store's current one.
func (t *SimpleTokens) Info(token string, rev uint64) (*AuthInfo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.tokens[token]
	if !ok || !t.enabled {
		return nil, false
	}
	now := t.now()
	if !now.Before(e.expires) {
		delete(t.tokens, token)
		return nil, false
	}
	e.expires = now.Add(t.ttl)
	t.tokens[token] = e
	return &AuthInfo{Username: e.user, Revision: rev}, true
}

// InvalidateUser drops the user's tokens (deleted user, changed password).
func (t *SimpleTokens) InvalidateUser(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, e := range t.tokens {
		if e.user == user {
			delete(t.tokens, k)
		}
	}
}

// Enable starts accepting tokens.
func (t *SimpleTokens) Enable() {
	t.mu.Lock()
	t.enabled = true
	t.mu.Unlock()
}

// Disable drops every token.
func (t *SimpleTokens) Disable() {
	t.mu.Lock()
	t.enabled = false
	t.tokens = map[string]simpleEntry{}
	t.mu.Unlock()
}
