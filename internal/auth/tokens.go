package auth

import (
	"fmt"
	"strings"
	"time"
)

// NewTokenProvider returns the token provider --auth-token names: "simple"
// (or empty) for etcd's simple tokens with --auth-token-ttl, or
// "jwt,pub-key=...,priv-key=...,sign-method=..." for JWT.
func NewTokenProvider(spec string, simpleTTL time.Duration) (TokenProvider, error) {
	kind, opts, _ := strings.Cut(spec, ",")
	switch kind {
	case "", "simple":
		return NewSimpleTokens(SimpleOptions{TTL: simpleTTL}), nil
	case "jwt":
		p, err := NewJWTTokens(opts)
		if err != nil {
			return nil, fmt.Errorf("--auth-token: %w", err)
		}
		return p, nil
	default:
		return nil, fmt.Errorf("--auth-token %q: unknown token type", kind)
	}
}
