package framework

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// EnvGofailHTTP is the variable on which a server built with -tags
// failpoints serves gofail's HTTP endpoint (host:port), as etcd does.
const EnvGofailHTTP = "GOFAIL_HTTP"

// WithFailpoints returns opts changed so that its members run the server
// built with -tags failpoints, each serving gofail's endpoint on a free
// port of its own (Member.SetFailpoint). It works with Start and
// StartCluster; a MemberOptions already in opts still runs first.
func WithFailpoints(t testing.TB, opts Options) Options {
	t.Helper()
	opts.Binary = ServerBinaryTags(t, "failpoints")
	addEndpoint := func(o *Options) {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		env := []string{fmt.Sprintf("%s=127.0.0.1:%d", EnvGofailHTTP, port)}
		for _, kv := range o.Env {
			if !strings.HasPrefix(kv, EnvGofailHTTP+"=") {
				env = append(env, kv)
			}
		}
		o.Env = env
	}
	addEndpoint(&opts)
	prev := opts.MemberOptions
	opts.MemberOptions = func(i int, o *Options) {
		if prev != nil {
			prev(i, o)
		}
		addEndpoint(o)
	}
	return opts
}

// FailpointAddr is host:port of the member's gofail endpoint, or "".
func (m *Member) FailpointAddr() string {
	for _, kv := range m.opts.Env {
		if a, ok := strings.CutPrefix(kv, EnvGofailHTTP+"="); ok {
			return a
		}
	}
	return ""
}

// SetFailpoint sets the gofail terms of the member's failpoint name
// ("panic", "sleep(100)", "1*panic", ... or "off").
func (m *Member) SetFailpoint(name, terms string) error {
	return m.failpointRequest(http.MethodPut, name, terms)
}

// Failpoints lists the failpoints the member's binary declares, with their
// current terms ("name=terms", one per line, as gofail answers GET /).
func (m *Member) Failpoints() (string, error) {
	var out string
	err := m.failpointDo(http.MethodGet, "", "", func(b []byte) { out = string(b) })
	return out, err
}

func (m *Member) failpointRequest(method, name, body string) error {
	return m.failpointDo(method, name, body, nil)
}

func (m *Member) failpointDo(method, name, body string, read func([]byte)) error {
	addr := m.FailpointAddr()
	if addr == "" {
		return fmt.Errorf("member %s has no %s (start it with WithFailpoints)", m.Name, EnvGofailHTTP)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+"/"+name, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("gofail %s %s on %s: %w", method, name, m.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("gofail %s %s on %s: %w", method, name, m.Name, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("gofail %s %s on %s: %s: %s", method, name, m.Name, resp.Status, b)
	}
	if read != nil {
		read(b)
	}
	return nil
}

// SpawnWithFailpoints starts a stopped member with GOFAIL_FAILPOINTS=terms
// ("name=terms;...", read by gofail as the process starts) for this run
// only, and does not wait for it to serve: a failpoint may stop it first.
func (m *Member) SpawnWithFailpoints(terms string) error {
	saved := m.opts.Env
	m.opts.Env = append(append([]string(nil), saved...), "GOFAIL_FAILPOINTS="+terms)
	defer func() { m.opts.Env = saved }()
	return m.spawn()
}
