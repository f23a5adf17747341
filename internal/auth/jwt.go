package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultJWTTTL is etcd's default JWT lifetime.
const DefaultJWTTTL = 5 * time.Minute

// ErrVerifyOnly is returned when a JWT provider holding only a public key is
// asked to sign.
var ErrVerifyOnly = errors.New("auth: token signing attempted with verify-only key")

// JWTTokens are signed tokens carrying the user name and the auth revision
// at issue ("username", "revision" and "exp" claims, as etcd's).
type JWTTokens struct {
	method     jwt.SigningMethod
	key        any // private key (or HMAC secret), or public key when verifyOnly
	verifyOnly bool
	ttl        time.Duration
	now        func() time.Time
}

// NewJWTTokens parses --auth-token's options after "jwt,":
// pub-key=FILE,priv-key=FILE,sign-method=ALG,ttl=DURATION.
func NewJWTTokens(opts string) (*JWTTokens, error) {
	m := map[string]string{}
	if opts != "" {
		for _, kv := range strings.Split(opts, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.Contains(v, "=") {
				return nil, ErrInvalidAuthOpts
			}
			if _, dup := m[k]; dup {
				return nil, ErrInvalidAuthOpts
			}
			m[k] = v
		}
	}
	t := &JWTTokens{ttl: DefaultJWTTTL, now: time.Now}
	if v := m["ttl"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, ErrInvalidAuthOpts
		}
		t.ttl = d
	}
	var pub, priv []byte
	var err error
	if f := m["pub-key"]; f != "" {
		if pub, err = os.ReadFile(f); err != nil {
			return nil, fmt.Errorf("auth: jwt public key: %w", err)
		}
	}
	if f := m["priv-key"]; f != "" {
		if priv, err = os.ReadFile(f); err != nil {
			return nil, fmt.Errorf("auth: jwt private key: %w", err)
		}
	}
	t.method = jwt.GetSigningMethod(m["sign-method"])
	if t.method == nil {
		return nil, ErrInvalidAuthMethod
	}
	switch t.method.(type) {
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		t.key, t.verifyOnly, err = keys(priv, pub, jwt.ParseRSAPrivateKeyFromPEM, jwt.ParseRSAPublicKeyFromPEM)
	case *jwt.SigningMethodECDSA:
		t.key, t.verifyOnly, err = keys(priv, pub, jwt.ParseECPrivateKeyFromPEM, jwt.ParseECPublicKeyFromPEM)
	case *jwt.SigningMethodEd25519:
		t.key, t.verifyOnly, err = keys(priv, pub,
			func(b []byte) (any, error) { return jwt.ParseEdPrivateKeyFromPEM(b) },
			func(b []byte) (any, error) { return jwt.ParseEdPublicKeyFromPEM(b) })
	case *jwt.SigningMethodHMAC:
		if len(priv) == 0 {
			return nil, errors.New("auth: missing key data")
		}
		t.key = priv
	default:
		return nil, ErrInvalidAuthMethod
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

func keys[P, Q any](priv, pub []byte, parsePriv func([]byte) (P, error), parsePub func([]byte) (Q, error)) (any, bool, error) {
	if len(priv) > 0 {
		k, err := parsePriv(priv)
		if err != nil {
			return nil, false, fmt.Errorf("auth: jwt private key: %w", err)
		}
		return k, false, nil
	}
	if len(pub) > 0 {
		k, err := parsePub(pub)
		if err != nil {
			return nil, false, fmt.Errorf("auth: jwt public key: %w", err)
		}
		return k, true, nil
	}
	return nil, false, errors.New("auth: missing key data")
}

// GenTokenPrefix is unused by JWTs; the entry still needs a value.
func (t *JWTTokens) GenTokenPrefix() (string, error) { return "", nil }

// Assign signs a token for user at revision rev.
func (t *JWTTokens) Assign(user string, rev uint64, _ string) (string, func(), error) {
	if t.verifyOnly {
		return "", nil, ErrVerifyOnly
	}
	tk := jwt.NewWithClaims(t.method, jwt.MapClaims{
		"username": user,
		"revision": rev,
		"exp":      t.now().Add(t.ttl).Unix(),
	})
	s, err := tk.SignedString(t.key)
	if err != nil {
		return "", nil, fmt.Errorf("auth: sign jwt: %w", err)
	}
	return s, nil, nil
}

// Info verifies a token; its revision is the one it was issued at, so a
// token older than the last auth change is refused at use.
func (t *JWTTokens) Info(token string, _ uint64) (*AuthInfo, bool) {
	parsed, err := jwt.Parse(token, func(tk *jwt.Token) (any, error) {
		if tk.Method.Alg() != t.method.Alg() {
			return nil, errors.New("invalid signing method")
		}
		switch k := t.key.(type) {
		case *rsa.PrivateKey:
			return &k.PublicKey, nil
		case *ecdsa.PrivateKey:
			return &k.PublicKey, nil
		case ed25519.PrivateKey:
			return k.Public(), nil
		default:
			return t.key, nil
		}
	}, jwt.WithTimeFunc(t.now))
	if err != nil || !parsed.Valid {
		return nil, false
	}
	claims, ok := parsed.Claims.(jwt.MapClaims)
	if !ok {
		return nil, false
	}
	user, ok := claims["username"].(string)
	if !ok {
		return nil, false
	}
	rev, ok := claims["revision"].(float64)
	if !ok {
		return nil, false
	}
	return &AuthInfo{Username: user, Revision: uint64(rev)}, true
}

// InvalidateUser, Enable and Disable are no-ops: JWTs are stateless.
func (t *JWTTokens) InvalidateUser(string) {}

// Enable is a no-op for JWTs.
func (t *JWTTokens) Enable() {}

// Disable is a no-op for JWTs.
func (t *JWTTokens) Disable() {}
