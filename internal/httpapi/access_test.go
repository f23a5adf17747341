package httpapi

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("served")) })

func serve(t *testing.T, a *AccessControl, method, host, origin string, secure bool) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "http://"+host+"/health", nil)
	r.Host = host
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	if secure {
		r.TLS = &tls.ConnectionState{}
	}
	w := httptest.NewRecorder()
	a.Wrap(okHandler).ServeHTTP(w, r)
	return w
}

func TestHostWhitelist(t *testing.T) {
	a, err := NewAccessControl([]string{"*"}, []string{"localhost", "etcd.example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"localhost:2379", "etcd.example", "etcd.example:80"} {
		if w := serve(t, a, "GET", host, "", false); w.Code != http.StatusOK || w.Body.String() != "served" {
			t.Errorf("Host %s: %d %q, want it served", host, w.Code, w.Body)
		}
	}
	w := serve(t, a, "GET", "evil.example:2379", "", false)
	if w.Code != http.StatusMisdirectedRequest {
		t.Fatalf("Host evil.example: status %d, want 421", w.Code)
	}
	want := "\netcd received your request, but the Host header was unrecognized.\n"
	if body := w.Body.String(); !strings.HasPrefix(body, want) || !strings.Contains(body, `etcd --host-whitelist "evil.example"`) ||
		!strings.HasSuffix(body, "(CVE-2018-5702).\n\n") {
		t.Fatalf("body %q", body)
	}
	// HTTPS requests are never checked.
	if w := serve(t, a, "GET", "evil.example", "", true); w.Code != http.StatusOK {
		t.Fatalf("HTTPS request refused: %d", w.Code)
	}
	for _, list := range [][]string{nil, {"*"}, {"localhost", "*"}} {
		a, err := NewAccessControl(nil, list, nil)
		if err != nil {
			t.Fatal(err)
		}
		if w := serve(t, a, "GET", "evil.example", "", false); w.Code != http.StatusOK {
			t.Errorf("whitelist %q refused a host: %d", list, w.Code)
		}
	}
}

func TestCORS(t *testing.T) {
	all, err := NewAccessControl([]string{"*"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Allow-all sends the headers on every response, Origin or not.
	w := serve(t, all, "GET", "localhost", "", false)
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "*" {
		t.Fatalf("allow-all: Access-Control-Allow-Origin %q", got)
	}
	if got := w.Header().Get("Access-Control-Allow-Methods"); got != "POST, GET, OPTIONS, PUT, DELETE" {
		t.Fatalf("Access-Control-Allow-Methods %q", got)
	}
	if got := w.Header().Get("Access-Control-Allow-Headers"); got != "accept, content-type, authorization" {
		t.Fatalf("Access-Control-Allow-Headers %q", got)
	}

	some, err := NewAccessControl([]string{"http://app.example:8080", "https://b.example:443"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w = serve(t, some, "GET", "localhost", "http://app.example:8080", false)
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "http://app.example:8080" || w.Body.String() != "served" {
		t.Fatalf("allowed origin: header %q body %q", got, w.Body)
	}
	w = serve(t, some, "GET", "localhost", "http://evil.example:8080", false)
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "" || w.Body.String() != "served" {
		t.Fatalf("other origin: header %q body %q (CORS only withholds headers)", got, w.Body)
	}
	// Preflight: answered at once with 200 and no body.
	w = serve(t, some, "OPTIONS", "localhost", "https://b.example:443", false)
	if w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get("Access-Control-Allow-Origin") != "https://b.example:443" {
		t.Fatalf("OPTIONS: %d %q %v", w.Code, w.Body, w.Header())
	}
}

func TestCORSValuesCheckedAsEtcdDoes(t *testing.T) {
	for _, bad := range [][]string{{"http://app.example"}, {"app.example:80"}, {"http://a.example:80/path"}, {"*", "http://a.example:80"}} {
		if _, err := NewAccessControl(bad, nil, nil); err == nil {
			t.Errorf("--cors %q accepted", bad)
		}
	}
}
