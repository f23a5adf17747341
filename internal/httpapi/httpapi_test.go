package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type fakeProbe struct {
	leader  bool
	alarms  []string
	readErr error
	learner bool
}

func (p *fakeProbe) HasLeader() bool  { return p.leader }
func (p *fakeProbe) Alarms() []string { return p.alarms }
func (p *fakeProbe) IsLearner() bool  { return p.learner }
func (p *fakeProbe) Read(context.Context, bool) error {
	return p.readErr
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestHealthMatchesEtcd(t *testing.T) {
	p := &fakeProbe{leader: true}
	h := New(Config{Probe: p, Versions: Versions{"3.7.3", "3.7.0", "3.7.0"}})
	cases := []struct {
		name  string
		setup func()
		path  string
		code  int
		body  string
	}{
		{"healthy", func() {}, "/health", 200, `{"health":"true","reason":""}`},
		{"no leader", func() { p.leader = false }, "/health", 503, `{"health":"false","reason":"RAFT NO LEADER"}`},
		{"serializable ignores leader", func() { p.leader = false }, "/health?serializable=true", 200, `{"health":"true","reason":""}`},
		{"alarm", func() { p.leader, p.alarms = true, []string{"NOSPACE"} }, "/health", 503, `{"health":"false","reason":"ALARM NOSPACE"}`},
		{"alarm excluded", func() { p.leader, p.alarms = true, []string{"NOSPACE"} }, "/health?exclude=NOSPACE", 200, `{"health":"true","reason":""}`},
		{"read fails", func() { p.leader, p.alarms, p.readErr = true, nil, errors.New("boom") }, "/health", 503, `{"health":"false","reason":"QGET ERROR:boom"}`},
		{"livez", func() { *p = fakeProbe{leader: true} }, "/livez", 200, "ok\n"},
		{"readyz", func() { *p = fakeProbe{leader: true} }, "/readyz", 200, "ok\n"},
		{"readyz sub-path", func() { *p = fakeProbe{leader: true} }, "/readyz/linearizable_read", 200, "ok\n"},
		{"readyz learner", func() { *p = fakeProbe{leader: true, learner: true} }, "/readyz", 503, ""},
		{"readyz learner excluded", func() { *p = fakeProbe{leader: true, learner: true} }, "/readyz?exclude=non_learner", 200, "ok\n"},
		{"version", func() {}, "/version", 200, `{"etcdserver":"3.7.3","etcdcluster":"3.7.0","storage":"3.7.0"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			*p = fakeProbe{leader: true}
			c.setup()
			code, body := get(t, h, c.path)
			if code != c.code {
				t.Fatalf("%s: code %d, want %d (body %q)", c.path, code, c.code, body)
			}
			if c.body != "" && body != c.body {
				t.Fatalf("%s: body %q, want %q", c.path, body, c.body)
			}
		})
	}
}

func TestReadyzVerboseAndUnknownCheck(t *testing.T) {
	h := New(Config{Probe: &fakeProbe{leader: true}})
	code, body := get(t, h, "/readyz?verbose")
	if code != 200 || !strings.Contains(body, "[+]linearizable_read ok") || !strings.HasSuffix(body, "readyz check passed\n") {
		t.Fatalf("verbose readyz: %d %q", code, body)
	}
	if code, _ := get(t, h, "/readyz/no_such_check"); code != 404 {
		t.Fatalf("unknown check: %d, want 404", code)
	}
	if code, _ := get(t, h, "/debug/pprof/"); code != 404 {
		t.Fatalf("pprof served without --enable-pprof: %d", code)
	}
}
