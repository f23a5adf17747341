package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/metastore/metastore/tests/framework"
)

// JSON shapes printed by etcdctl -w json (bytes are base64, decoded by
// encoding/json into []byte).
type ctlHeader struct {
	ClusterID uint64 `json:"cluster_id"`
	MemberID  uint64 `json:"member_id"`
	Revision  int64  `json:"revision"`
	RaftTerm  uint64 `json:"raft_term"`
}

type ctlKV struct {
	Key            []byte `json:"key"`
	CreateRevision int64  `json:"create_revision"`
	ModRevision    int64  `json:"mod_revision"`
	Version        int64  `json:"version"`
	Value          []byte `json:"value"`
	Lease          int64  `json:"lease"`
}

type ctlGet struct {
	Header ctlHeader `json:"header"`
	Kvs    []ctlKV   `json:"kvs"`
	More   bool      `json:"more"`
	Count  int64     `json:"count"`
}

func ctlKeys(kvs []ctlKV) []string {
	out := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, string(kv.Key))
	}
	return out
}

func ctlJSON(t *testing.T, m *framework.Member, out any, args ...string) {
	t.Helper()
	s := m.MustEtcdctl(append(args, "-w", "json")...)
	if err := json.Unmarshal([]byte(s), out); err != nil {
		t.Fatalf("etcdctl %s: bad json %q: %v", strings.Join(args, " "), s, err)
	}
}

func TestEtcdctlKV(t *testing.T) {
	framework.Tool(t, "etcdctl") // skip early, before starting a server
	m, _, _ := setup(t)

	for _, kv := range [][2]string{{"foo", "bar"}, {"foo/a", "3"}, {"foo/b", "1"}, {"foo/c", "2"}, {"fop", "x"}, {"foo/a", "4"}} {
		if out := m.MustEtcdctl("put", kv[0], kv[1]); out != "OK\n" {
			t.Fatalf("etcdctl put: %q", out)
		}
	}
	var put struct {
		Header ctlHeader `json:"header"`
		PrevKV *ctlKV    `json:"prev_kv"`
	}
	ctlJSON(t, m, &put, "put", "foo", "baz", "--prev-kv")
	if put.Header.Revision != 8 || put.PrevKV == nil || string(put.PrevKV.Value) != "bar" || put.PrevKV.ModRevision != 2 {
		t.Fatalf("put --prev-kv: %+v %+v", put.Header, put.PrevKV)
	}

	getCases := []struct {
		args  []string
		keys  []string
		count int64
		more  bool
	}{
		{[]string{"foo"}, []string{"foo"}, 1, false},
		{[]string{"foo/", "--prefix"}, []string{"foo/a", "foo/b", "foo/c"}, 3, false},
		{[]string{"foo/", "--prefix", "--limit", "2"}, []string{"foo/a", "foo/b"}, 3, true},
		{[]string{"foo/", "--prefix", "--sort-by", "VALUE", "--order", "DESCEND"}, []string{"foo/a", "foo/c", "foo/b"}, 3, false},
		{[]string{"foo/", "--prefix", "--sort-by", "MODIFY", "--order", "ASCEND"}, []string{"foo/b", "foo/c", "foo/a"}, 3, false},
		{[]string{"foo/", "--prefix", "--sort-by", "CREATE", "--order", "DESCEND"}, []string{"foo/c", "foo/b", "foo/a"}, 3, false},
		{[]string{"foo/", "--prefix", "--sort-by", "VERSION", "--order", "DESCEND"}, []string{"foo/a", "foo/b", "foo/c"}, 3, false},
		{[]string{"foo/", "--prefix", "--order", "DESCEND"}, []string{"foo/c", "foo/b", "foo/a"}, 3, false},
		{[]string{"foo/b", "--from-key"}, []string{"foo/b", "foo/c", "fop"}, 3, false},
		{[]string{"foo/a", "foo/c"}, []string{"foo/a", "foo/b"}, 2, false},
		{[]string{"foo/", "--prefix", "--rev", "4"}, []string{"foo/a", "foo/b"}, 2, false},
	}
	for _, gc := range getCases {
		var g ctlGet
		ctlJSON(t, m, &g, append([]string{"get"}, gc.args...)...)
		if got := ctlKeys(g.Kvs); !equalStrings(got, gc.keys) || g.Count != gc.count || g.More != gc.more || g.Header.Revision != 8 {
			t.Fatalf("etcdctl get %q: keys %q count %d more %v rev %d; want %q %d %v rev 8", gc.args, got, g.Count, g.More, g.Header.Revision, gc.keys, gc.count, gc.more)
		}
	}
	var g ctlGet
	ctlJSON(t, m, &g, "get", "foo/a", "--rev", "3")
	if len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "3" {
		t.Fatalf("get --rev 3: %+v", g.Kvs)
	}

	// Simple (default) output: key, value lines; keys-only prints keys.
	if out := m.MustEtcdctl("get", "foo/", "--prefix", "--keys-only"); strings.Fields(out) == nil || !equalStrings(strings.Fields(out), []string{"foo/a", "foo/b", "foo/c"}) {
		t.Fatalf("get --keys-only: %q", out)
	}
	if out := m.MustEtcdctl("get", "foo/", "--prefix"); !equalStrings(strings.Fields(out), []string{"foo/a", "4", "foo/b", "1", "foo/c", "2"}) {
		t.Fatalf("get --prefix: %q", out)
	}
	// --count-only needs the fields format.
	if out := m.MustEtcdctl("get", "foo/", "--prefix", "--count-only", "-w", "fields"); !strings.Contains(out, "\"Count\" : 3\n") || strings.Contains(out, "\"Key\"") {
		t.Fatalf("get --count-only: %q", out)
	}

	// del --prev-kv --prefix prints the count, then each deleted key and value.
	if out := m.MustEtcdctl("del", "foo/", "--prefix", "--prev-kv"); !equalStrings(strings.Fields(out), []string{"3", "foo/a", "4", "foo/b", "1", "foo/c", "2"}) {
		t.Fatalf("del --prev-kv --prefix: %q", out)
	}
	if out := m.MustEtcdctl("del", "foo/", "--prefix"); out != "0\n" {
		t.Fatalf("second del: %q", out)
	}
}

func TestEtcdctlTxnCompaction(t *testing.T) {
	framework.Tool(t, "etcdctl")
	m, _, _ := setup(t)
	m.MustEtcdctl("put", "k1", "v1") // rev 2
	m.MustEtcdctl("put", "k1", "v2") // rev 3

	// Interactive txn: compares, blank line, success ops, blank line, failure ops, blank line.
	script := "value(\"k1\") = \"v2\"\nversion(\"k1\") = \"2\"\nmod(\"k1\") > \"2\"\ncreate(\"k1\") = \"2\"\n\nput a 1\nget k1\n\nput else 1\n\n"
	r := m.EtcdctlStdin(script, "txn", "--interactive")
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if !strings.Contains(r.Stdout, "compares:") || !strings.Contains(r.Stdout, "SUCCESS") || !strings.Contains(r.Stdout, "OK") || !strings.Contains(r.Stdout, "k1\nv2") {
		t.Fatalf("interactive txn output %q", r.Stdout)
	}
	r = m.EtcdctlStdin("value(\"k1\") = \"nope\"\n\nput a 2\n\nput else 1\n\n", "txn", "-w", "json")
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	var tx struct {
		Header    ctlHeader         `json:"header"`
		Succeeded bool              `json:"succeeded"`
		Responses []json.RawMessage `json:"responses"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &tx); err != nil || tx.Succeeded || len(tx.Responses) != 1 || tx.Header.Revision != 5 {
		t.Fatalf("failing txn: %q (%v)", r.Stdout, err)
	}
	if out := m.MustEtcdctl("get", "a", "--print-value-only"); out != "1\n" {
		t.Fatalf("a = %q", out)
	}

	if out := m.MustEtcdctl("compaction", "3", "--physical"); out != "compacted revision 3\n" {
		t.Fatalf("compaction: %q", out)
	}
	res := m.Etcdctl("get", "k1", "--rev", "2")
	if res.Err == nil || !strings.Contains(res.Stderr, "etcdserver: mvcc: required revision has been compacted") {
		t.Fatalf("get compacted rev: err %v stderr %q", res.Err, res.Stderr)
	}
	res = m.Etcdctl("compaction", "3")
	if res.Err == nil || !strings.Contains(res.Stderr, "Error: etcdserver: mvcc: required revision has been compacted") {
		t.Fatalf("compaction again: err %v stderr %q", res.Err, res.Stderr)
	}
}

func TestEtcdctlCluster(t *testing.T) {
	framework.Tool(t, "etcdctl")
	m, _, _ := setup(t)
	m.MustEtcdctl("put", "k", "v")

	var st []struct {
		Endpoint string
		Status   struct {
			Header      ctlHeader `json:"header"`
			Version     string    `json:"version"`
			DBSize      int64     `json:"dbSize"`
			Leader      uint64    `json:"leader"`
			RaftIndex   uint64    `json:"raftIndex"`
			RaftTerm    uint64    `json:"raftTerm"`
			DBSizeInUse int64     `json:"dbSizeInUse"`
		}
	}
	ctlJSON(t, m, &st, "endpoint", "status")
	if len(st) != 1 || st[0].Endpoint != m.ClientURL || st[0].Status.Leader != st[0].Status.Header.MemberID ||
		st[0].Status.Header.Revision != 2 || st[0].Status.DBSize <= 0 || st[0].Status.RaftTerm < 1 || st[0].Status.Version == "" {
		t.Fatalf("endpoint status: %+v", st)
	}
	// The table format must work too (it is what operators read).
	if out := m.MustEtcdctl("endpoint", "status", "-w", "table"); !strings.Contains(out, m.ClientURL) || !strings.Contains(out, st[0].Status.Version) {
		t.Fatalf("endpoint status table: %q", out)
	}

	var health []struct {
		Endpoint string `json:"endpoint"`
		Health   bool   `json:"health"`
		Error    string `json:"error"`
	}
	ctlJSON(t, m, &health, "endpoint", "health")
	if len(health) != 1 || !health[0].Health || health[0].Endpoint != m.ClientURL || health[0].Error != "" {
		t.Fatalf("endpoint health: %+v", health)
	}
	if out := m.MustEtcdctl("endpoint", "health"); !strings.Contains(out, m.ClientURL+" is healthy") {
		t.Fatalf("endpoint health: %q", out)
	}

	var hk []struct {
		Endpoint string
		HashKV   struct {
			Header          ctlHeader `json:"header"`
			Hash            uint32    `json:"hash"`
			CompactRevision int64     `json:"compact_revision"`
			HashRevision    int64     `json:"hash_revision"`
		}
	}
	ctlJSON(t, m, &hk, "endpoint", "hashkv")
	if len(hk) != 1 || hk[0].HashKV.HashRevision != 2 || hk[0].HashKV.CompactRevision != -1 || hk[0].HashKV.Hash == 0 {
		t.Fatalf("endpoint hashkv: %+v", hk)
	}

	var ml struct {
		Header  ctlHeader `json:"header"`
		Members []struct {
			ID         uint64   `json:"ID"`
			Name       string   `json:"name"`
			PeerURLs   []string `json:"peerURLs"`
			ClientURLs []string `json:"clientURLs"`
			IsLearner  bool     `json:"isLearner"`
		} `json:"members"`
	}
	ctlJSON(t, m, &ml, "member", "list")
	if len(ml.Members) != 1 || ml.Members[0].ID != st[0].Status.Header.MemberID || ml.Members[0].Name != m.Name ||
		!equalStrings(ml.Members[0].PeerURLs, []string{m.PeerURL}) || !equalStrings(ml.Members[0].ClientURLs, []string{m.ClientURL}) {
		t.Fatalf("member list: %+v", ml)
	}
	// Simple format: ID, status, name, peer URLs, client URLs, is-learner.
	if out := m.MustEtcdctl("member", "list"); !strings.Contains(out, ", started, "+m.Name+", "+m.PeerURL+", "+m.ClientURL+", false") {
		t.Fatalf("member list: %q", out)
	}
}

// TestEtcdctlCheckPerf runs etcdctl's built-in load check (60 s for the
// smallest workload; etcdctl has no shorter one). Whether the server meets
// etcdctl's throughput bar is not asserted, only that the check completes.
func TestEtcdctlCheckPerf(t *testing.T) {
	framework.Tool(t, "etcdctl")
	m, _, _ := setup(t)
	// check perf runs for 60 s, then compacts and defragments.
	r := m.EtcdctlTimeout(3*time.Minute, "", "check", "perf", "--load=s", "--auto-compact", "--auto-defrag")
	var verdicts []string
	for _, line := range strings.Split(strings.ReplaceAll(r.Stdout+r.Stderr, "\r", "\n"), "\n") {
		for _, word := range []string{"PASS:", "FAIL:"} {
			if i := strings.Index(line, word); i >= 0 {
				verdicts = append(verdicts, line[i:])
			}
		}
	}
	if len(verdicts) == 0 || !strings.Contains(strings.Join(verdicts, "\n"), "Throughput is") {
		t.Fatalf("check perf did not complete: %v\n%s", r.Err, tail(r.Stderr, 2000))
	}
	t.Logf("check perf (not asserted), exit error %v:\n%s", r.Err, strings.Join(verdicts, "\n"))
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
