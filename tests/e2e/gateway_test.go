package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// post sends a JSON body to the gateway and decodes the JSON answer.
func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Post(url, "application/json", bytes.NewBufferString(body))
	check(t, "POST "+url, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	check(t, "read body", err)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("POST %s: body %q is not JSON: %v", url, b, err)
	}
	return resp.StatusCode, out
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestJSONGateway drives etcd's HTTP/JSON gateway as curl users do: bytes
// as base64, int64s as strings, proto field names, /v3beta/ as an alias.
func TestJSONGateway(t *testing.T) {
	m, _, _ := setup(t)

	code, put := post(t, m.ClientURL+"/v3/kv/put", `{"key":"`+b64("gw-key")+`","value":"`+b64("gw\x00value")+`"}`)
	if code != 200 {
		t.Fatalf("put: %d %v", code, put)
	}
	hdr, _ := put["header"].(map[string]any)
	if rev, ok := hdr["revision"].(string); !ok || rev == "" {
		t.Fatalf("put header revision %v: int64s must be JSON strings", hdr["revision"])
	}

	code, rng := post(t, m.ClientURL+"/v3beta/kv/range", `{"key":"`+b64("gw-key")+`"}`)
	if code != 200 {
		t.Fatalf("range via /v3beta: %d %v", code, rng)
	}
	kvs, _ := rng["kvs"].([]any)
	if len(kvs) != 1 {
		t.Fatalf("range kvs = %v", rng["kvs"])
	}
	kv := kvs[0].(map[string]any)
	if kv["value"] != b64("gw\x00value") || kv["create_revision"] == nil {
		t.Fatalf("kv = %v (values are base64, fields use proto names)", kv)
	}

	code, bad := post(t, m.ClientURL+"/v3/kv/range", `{"key":""}`)
	if code != http.StatusBadRequest || bad["message"] != "etcdserver: key is not provided" {
		t.Fatalf("empty key: %d %v, want 400 with etcd's message", code, bad)
	}
}
