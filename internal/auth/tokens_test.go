package auth

import (
	"strings"
	"testing"
	"time"
)

func TestNewTokenProvider(t *testing.T) {
	for _, spec := range []string{"", "simple"} {
		p, err := NewTokenProvider(spec, time.Minute)
		if err != nil {
			t.Fatalf("%q: %v", spec, err)
		}
		if _, ok := p.(*SimpleTokens); !ok {
			t.Fatalf("%q: got %T, want simple tokens", spec, p)
		}
	}
	if _, err := NewTokenProvider("opaque", 0); err == nil || !strings.Contains(err.Error(), "unknown token type") {
		t.Fatalf("unknown kind: err = %v", err)
	}
	if _, err := NewTokenProvider("jwt,pub-key=/nonexistent", 0); err == nil || !strings.HasPrefix(err.Error(), "--auth-token: ") {
		t.Fatalf("bad jwt options: err = %v", err)
	}
}
