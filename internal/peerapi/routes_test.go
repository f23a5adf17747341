package peerapi

import (
	"net/http"
	"strings"
	"testing"
)

type mux map[string]http.HandlerFunc

func (m mux) HandleFunc(p string, h http.HandlerFunc) { m[p] = h }

func TestRegisterServesEveryRouteUnderThePrefix(t *testing.T) {
	h := func(http.ResponseWriter, *http.Request) {}
	m := mux{}
	if err := (Handlers{LeaseRenew: h, LeaseTimeToLive: h, HashKV: h, Members: h, Promote: h, Version: h}).Register(m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 6 {
		t.Fatalf("%d routes registered, want 6", len(m))
	}
	for p := range m {
		if !strings.HasPrefix(p, Prefix) || p == PathStreamMsgApp || p == PathStreamMessage || p == PathSnapshot {
			t.Errorf("route %s clashes with the raft transport", p)
		}
	}
	if err := (Handlers{LeaseRenew: h}).Register(mux{}); err == nil {
		t.Fatal("Register accepted a missing handler")
	}
}
