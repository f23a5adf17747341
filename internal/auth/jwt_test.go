package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/metastore/metastore/internal/clock"
)

func writeECKeys(t *testing.T) (priv, pub string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	ud, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	priv, pub = filepath.Join(dir, "priv.pem"), filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: pd}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ud}), 0o600); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func TestJWTTokens(t *testing.T) {
	priv, pub := writeECKeys(t)
	tp, err := NewJWTTokens("pub-key=" + pub + ",priv-key=" + priv + ",sign-method=ES256,ttl=1m")
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFakeAt(time.Now())
	tp.now = clk.Now
	tok, _, err := tp.Assign("alice", 42, "")
	if err != nil {
		t.Fatal(err)
	}
	ai, ok := tp.Info(tok, 100)
	if !ok || ai.Username != "alice" || ai.Revision != 42 {
		t.Fatalf("info %+v %v", ai, ok)
	}
	clk.Advance(2 * time.Minute)
	if _, ok := tp.Info(tok, 100); ok {
		t.Fatal("expired JWT accepted")
	}
	verify, err := NewJWTTokens("pub-key=" + pub + ",sign-method=ES256")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := verify.Assign("alice", 1, ""); !errors.Is(err, ErrVerifyOnly) {
		t.Fatalf("verify-only assign: %v", err)
	}
	if _, err := NewJWTTokens("priv-key=" + priv + ",sign-method=nope"); !errors.Is(err, ErrInvalidAuthMethod) {
		t.Fatalf("bad method: %v", err)
	}
	if _, err := NewJWTTokens("garbage"); !errors.Is(err, ErrInvalidAuthOpts) {
		t.Fatalf("bad opts: %v", err)
	}
}
