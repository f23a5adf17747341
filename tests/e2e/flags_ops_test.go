package e2e

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

// logEntry returns the first JSON log line of m with message msg for which
// match is true, polling until the deadline.
func logEntry(t *testing.T, m *framework.Member, msg string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	err := framework.WaitFor(10*time.Second, 20*time.Millisecond, func() (bool, error) {
		for _, line := range strings.Split(m.Logs(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) != nil || e["msg"] != msg {
				continue
			}
			if match(e) {
				found = e
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no log line %q matching; log:\n%s", msg, m.Logs())
	}
	return found
}

func field(e map[string]any, k string) string {
	s, _ := e[k].(string)
	return s
}

// TestWarningDurations checks --warning-unary-request-duration and
// --warning-apply-duration: with both at 1ns every request is slow, and
// the server logs etcd's "request stats" (method and request summary,
// value by size only) and "apply request took too long" (the replicated
// request, and a range read with etcd's "read-only range " prefix).
func TestWarningDurations(t *testing.T) {
	m, c, ctx := setup(t, "--warning-unary-request-duration", "1ns", "--warning-apply-duration", "1ns")
	mustPut(t, c, ctx, "slow-key", "secret-value-7")
	mustGet(t, c, ctx, "slow-range", clientv3.WithPrefix())

	e := logEntry(t, m, "request stats", func(e map[string]any) bool {
		return field(e, "response type") == "/etcdserverpb.KV/Put"
	})
	if got, want := field(e, "request content"), `key:"slow-key" value_size:14`; !strings.Contains(got, want) {
		t.Errorf("request content %q, want it to hold %q", got, want)
	}
	if e["level"] != "warn" || e["request count"] != float64(1) {
		t.Errorf("request stats line %v: want level warn, request count 1", e)
	}
	if strings.Contains(m.Logs(), "secret-value-7") {
		t.Errorf("a log line holds the value")
	}
	e = logEntry(t, m, "apply request took too long", func(e map[string]any) bool {
		return strings.Contains(field(e, "request"), `put:<key:"slow-key" value_size:14`)
	})
	if field(e, "expected-duration") != "1ns" || !strings.HasPrefix(field(e, "response"), "size:") {
		t.Errorf("apply warning %v: want expected-duration 1ns and the response size", e)
	}
	e = logEntry(t, m, "apply request took too long", func(e map[string]any) bool {
		return field(e, "prefix") == "read-only range " && strings.Contains(field(e, "request"), `key:"slow-range"`)
	})
	if !strings.HasPrefix(field(e, "response"), "range_response_count:0 ") {
		t.Errorf("read-only range warning %v", e)
	}
}

// TestLogRotation checks --enable-log-rotation: with a 1 MB maxsize the log
// file is rotated by lumberjack (a timestamped backup next to it) once the
// server has logged more than that, and the current file starts afresh.
func TestLogRotation(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "server.log")
	_, c, ctx := setup(t, "--log-outputs", logFile, "--enable-log-rotation",
		"--log-rotation-config-json", `{"maxsize": 1, "maxbackups": 3}`,
		// Every put logs its key twice: ~16 KiB per put.
		"--warning-unary-request-duration", "1ns", "--warning-apply-duration", "1ns")
	key := strings.Repeat("k", 8<<10)
	var backups []string
	err := framework.WaitFor(60*time.Second, time.Millisecond, func() (bool, error) {
		if _, err := c.Put(ctx, key, "v"); err != nil {
			return false, err
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return false, err
		}
		backups = backups[:0]
		for _, e := range ents {
			if e.Name() != "server.log" && strings.HasPrefix(e.Name(), "server-") && strings.HasSuffix(e.Name(), ".log") {
				backups = append(backups, e.Name())
			}
		}
		return len(backups) > 0, nil
	})
	if err != nil {
		t.Fatalf("no rotated log in %s: %v", dir, err)
	}
	st, err := os.Stat(filepath.Join(dir, backups[0]))
	check(t, "stat backup", err)
	if st.Size() < 900<<10 || st.Size() > 1<<20 {
		t.Errorf("backup %s holds %d bytes, want about 1 MB", backups[0], st.Size())
	}
	cur, err := os.Stat(logFile)
	check(t, "stat log", err)
	if cur.Size() >= st.Size() {
		t.Errorf("current log holds %d bytes, no less than the rotated one (%d)", cur.Size(), st.Size())
	}
}

// TestSelfSignedCertValidity checks that --auto-tls certificates are valid
// for --self-signed-cert-validity years (of 365 days) from the start.
func TestSelfSignedCertValidity(t *testing.T) {
	start := time.Now()
	m := framework.Start(t, framework.Options{
		ClientScheme: "https",
		ClientTLS:    &tls.Config{InsecureSkipVerify: true}, // a self-signed certificate: nothing to verify against
		ExtraArgs:    []string{"--auto-tls", "--self-signed-cert-validity", "3"},
	})
	u, err := url.Parse(m.ClientURL)
	check(t, "client URL", err)
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	check(t, "dial", err)
	defer conn.Close()
	cert := conn.ConnectionState().PeerCertificates[0]
	want := start.Add(3 * 365 * 24 * time.Hour)
	if cert.NotAfter.Before(want.Add(-time.Minute)) || cert.NotAfter.After(time.Now().Add(3*365*24*time.Hour+time.Minute)) {
		t.Errorf("certificate valid until %v, want 3 years of 365 days from the start (%v)", cert.NotAfter, want)
	}
}

// TestInitialElectionTickAdvance checks --initial-election-tick-advance in
// a three-member cluster: by default each member, once connected to both
// peers, fast-forwards its clock to two ticks before an election timeout
// (etcd's log line and numbers); with =false it does not.
func TestInitialElectionTickAdvance(t *testing.T) {
	ms := framework.StartCluster(t, 3, framework.Options{ExtraArgs: []string{"--heartbeat-interval", "100", "--election-timeout", "2000"}})
	for _, m := range ms {
		e := logEntry(t, m, "initialized peer connections; fast-forwarding election ticks", func(map[string]any) bool { return true })
		if e["forward-ticks"] != float64(18) || e["election-ticks"] != float64(20) || e["forward-duration"] != "1.8s" || e["active-remote-members"] != float64(2) {
			t.Errorf("%s: %v, want 18 of 20 ticks (1.8s) forwarded with 2 peers active", m.Name, e)
		}
	}
	off := framework.StartCluster(t, 3, framework.Options{ExtraArgs: []string{"--initial-election-tick-advance=false"}})
	for _, m := range off {
		logEntry(t, m, "skipping initial election tick advance", func(e map[string]any) bool { return e["election-ticks"] == float64(10) })
		if strings.Contains(m.Logs(), "fast-forwarding election ticks") {
			t.Errorf("%s advanced its election ticks with --initial-election-tick-advance=false", m.Name)
		}
	}
}

// TestRaftReadTimeout checks --raft-read-timeout on the peer listener: a
// peer request whose body stalls has its connection closed once the read
// timeout passes, instead of holding it open.
//
// metastore only: etcd 3.7.3 was observed to keep such a connection (and an
// idle one) open well past --raft-read-timeout, although it configures its
// peer listener with that timeout; etcd applies the flag to its dialed
// connections and stream heartbeats, which have no client-visible effect.
func TestRaftReadTimeout(t *testing.T) {
	if !ours() {
		t.Skip("etcd 3.7.3 does not close a stalled peer request at --raft-read-timeout (see the comment)")
	}
	m, _, _ := setup(t, "--raft-read-timeout", "300ms")
	u, err := url.Parse(m.PeerURL)
	check(t, "peer URL", err)
	conn, err := net.Dial("tcp", u.Host)
	check(t, "dial peer port", err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /raft/hashkv HTTP/1.1\r\nHost: "+u.Host+"\r\nContent-Length: 8\r\n\r\nab")
	check(t, "write a partial request", err)
	// Far beyond the read timeout, far below anything else that could
	// close the connection (the default read timeout is 5 s).
	check(t, "deadline", conn.SetReadDeadline(time.Now().Add(4*time.Second)))
	_, err = io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the peer connection with a stalled request body is still open after 4s")
	}
}

// TestBboltOnlyFlagsLogOnce checks that the flags tuning bbolt and etcd's
// WAL/snapshot files, which metastore has no use for, are accepted and each
// logged once with the reason it has no effect.
func TestBboltOnlyFlagsLogOnce(t *testing.T) {
	if !ours() {
		t.Skip("etcd acts on these flags")
	}
	flags := []string{"max-wals", "max-snapshots", "backend-batch-interval", "backend-batch-limit"}
	m, c, ctx := setup(t, "--max-wals", "3", "--max-snapshots", "3", "--backend-batch-interval", "10ms",
		"--backend-batch-limit", "100")
	mustPut(t, c, ctx, "k", "v")
	for _, f := range flags {
		logEntry(t, m, "flag has no effect on metastore", func(e map[string]any) bool {
			return e["flag"] == "--"+f && field(e, "reason") != ""
		})
		if n := strings.Count(m.Logs(), `"flag":"--`+f+`"`); n != 1 {
			t.Errorf("--%s logged %d times, want once", f, n)
		}
	}
}

// TestFeatureGatesWithoutEffectLogged checks that a --feature-gates gate
// metastore does not act on is logged once with the reason (none is ignored
// silently), and that a gate it acts on is not.
func TestFeatureGatesWithoutEffectLogged(t *testing.T) {
	if !ours() {
		t.Skip("etcd acts on these gates")
	}
	m, c, ctx := setup(t, "--feature-gates", "TxnModeWriteWithSharedBuffer=true,PriorityRequest=true,CompactHashCheck=true")
	mustPut(t, c, ctx, "k", "v")
	for _, g := range []string{"TxnModeWriteWithSharedBuffer", "PriorityRequest"} {
		logEntry(t, m, "feature gate has no effect on metastore", func(e map[string]any) bool {
			return e["flag"] == "--feature-gates="+g && field(e, "reason") != ""
		})
		if n := strings.Count(m.Logs(), `"flag":"--feature-gates=`+g+`"`); n != 1 {
			t.Errorf("%s logged %d times, want once", g, n)
		}
	}
	if strings.Contains(m.Logs(), `"flag":"--feature-gates=CompactHashCheck"`) {
		t.Error("CompactHashCheck, which metastore acts on, was logged as having no effect")
	}
}
