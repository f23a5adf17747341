package listen

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustURL(t *testing.T, s string) url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return *u
}

func TestSelfEndpoint(t *testing.T) {
	cases := []struct {
		urls []string
		want string
	}{
		{nil, "127.0.0.1:2379"},
		{[]string{"http://0.0.0.0:2379"}, "127.0.0.1:2379"},
		{[]string{"http://[::]:2379"}, "127.0.0.1:2379"},
		{[]string{"https://10.0.0.1:2379"}, "10.0.0.1:2379"},
		{[]string{"unix://localhost:2379", "http://127.0.0.2:1"}, "127.0.0.2:1"},
		{[]string{"unix:///run/m.sock"}, "unix:///run/m.sock"},
		{[]string{"unixs://sock"}, "unix://sock"},
	}
	for _, c := range cases {
		var us []url.URL
		for _, s := range c.urls {
			us = append(us, mustURL(t, s))
		}
		if got := SelfEndpoint(us); got != c.want {
			t.Errorf("SelfEndpoint(%v) = %q, want %q", c.urls, got, c.want)
		}
	}
}

func TestListenRefusesBadURLs(t *testing.T) {
	cases := []struct{ url, want string }{
		{"ftp://127.0.0.1:0", "scheme must be http, https, unix or unixs"},
		{"https://127.0.0.1:0", "needs a certificate"},
		{"unixs://x.sock", "needs a certificate"},
	}
	for _, c := range cases {
		if _, err := Listen(mustURL(t, c.url), "--listen-client-urls", false, SocketOptions{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.url, err, c.want)
		}
	}
}

func TestListenUnixReplacesStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.sock")
	u := url.URL{Scheme: "unix", Path: path}
	l, err := Listen(u, "--listen-client-urls", false, SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A killed process leaves its socket file behind.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l, err = Listen(u, "--listen-client-urls", false, SocketOptions{})
	if err != nil {
		t.Fatalf("restart over a stale socket: %v", err)
	}
	l.Close()
	plain := filepath.Join(dir, "file")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(url.URL{Scheme: "unix", Path: plain}, "--listen-client-urls", false, SocketOptions{}); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("a regular file in the way: %v", err)
	}
}

func TestListenReusePort(t *testing.T) {
	o := SocketOptions{ReusePort: true, ReuseAddress: true}
	a, err := Listen(mustURL(t, "http://127.0.0.1:0"), "--listen-peer-urls", false, o)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Listen(url.URL{Scheme: "http", Host: a.Addr().String()}, "--listen-peer-urls", false, o)
	if err != nil {
		t.Fatalf("second listener on the port with SO_REUSEPORT: %v", err)
	}
	b.Close()
}

func TestGRPCOrHTTP(t *testing.T) {
	hit := ""
	h := GRPCOrHTTP(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = "grpc" }),
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = "http" }))
	r := httptest.NewRequest(http.MethodPost, "/etcdserverpb.KV/Range", nil)
	r.ProtoMajor = 2
	r.Header.Set("Content-Type", "application/grpc+proto")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if hit != "grpc" {
		t.Fatalf("gRPC call went to %s", hit)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/health", nil))
	if hit != "http" {
		t.Fatalf("HTTP request went to %s", hit)
	}
}
