package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/metastore/metastore/internal/tlsutil/tlstest"
	"github.com/metastore/metastore/tests/framework"
)

// initialCheckGate turns on etcd's check at start.
const initialCheckGate = "--feature-gates=InitialCorruptCheck=true"

// TestInitialCorruptCheck is etcd's InitialCorruptCheck on a 3-member
// cluster: a healthy member restarted with the gate compares its hash with
// its peers' and starts; a member whose stored data was damaged while it was
// stopped refuses to start with the gate (exit status 1, etcd's "found data
// inconsistency with peers", never serving), and without the gate it
// starts and the periodic check (--corrupt-check-time) raises CORRUPT for
// it, as before. It passes on etcd v3.7.3 too (whose bbolt data is damaged
// the same way).
func TestInitialCorruptCheck(t *testing.T) {
	extra := []string{"--corrupt-check-time", "300ms"}
	ms := framework.StartCluster(t, 3, framework.Options{ExtraArgs: extra})
	initialCheckScenario(t, ms, func(int) []string { return extra })
}

// TestInitialCorruptCheckPeerTLS is TestInitialCorruptCheck with mutual
// TLS between the members: the check at start, which runs before the
// member's peer transport, asks its peers with the peer certificates.
func TestInitialCorruptCheckPeerTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "peer-ca")
	caFile := ca.WriteCA(t, dir, "ca")
	extra := make([][]string, 3)
	for i := range extra {
		cert, key := ca.Issue(t, tlstest.Loopback("member")).Write(t, dir, fmt.Sprintf("peer%d", i))
		extra[i] = []string{"--corrupt-check-time", "300ms", "--peer-cert-file", cert, "--peer-key-file", key,
			"--peer-trusted-ca-file", caFile, "--peer-client-cert-auth"}
	}
	ms := framework.StartCluster(t, 3, framework.Options{PeerScheme: "https",
		MemberOptions: func(i int, o *framework.Options) { o.ExtraArgs = extra[i] }})
	initialCheckScenario(t, ms, func(i int) []string { return extra[i] })
}

// initialCheckScenario runs the check on a running 3-member cluster whose
// member i was started with the flags extra(i).
func initialCheckScenario(t *testing.T, ms []*framework.Member, extra func(i int) []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := ms[0].Client()
	for _, k := range []string{"a", "b", "victim"} {
		_, err := c.Put(ctx, k, k+"-corrupt-me-value")
		check(t, "put", err)
	}

	// A healthy member passes the check and serves.
	_, err := ms[1].Client().Get(ctx, "victim") // it applied every write
	check(t, "linearizable read on the healthy member", err)
	ms[1].Stop()
	ms[1].StartAgainWith(append(extra(1), initialCheckGate)...)
	if logs := ms[1].Logs(); !strings.Contains(logs, "starting initial corruption check") ||
		!strings.Contains(logs, "initial corruption checking passed; no corruption") {
		t.Fatalf("the healthy member did not log a passed initial check:\n%s", logs)
	}
	if strings.Contains(ms[1].Logs(), `"flag":"--feature-gates=InitialCorruptCheck"`) {
		t.Error("InitialCorruptCheck was logged as a gate without effect")
	}

	// The damaged member refuses to start with the gate.
	damaged := ms[2]
	_, err = damaged.Client().Get(ctx, "victim")
	check(t, "linearizable read on the member to damage", err)
	damaged.Stop()
	damageStoredValue(t, damaged, "victim-corrupt-me-value")
	out, exited, code := runUntilOutput(t, append(damaged.Args(), initialCheckGate), "", true)
	if !exited || code != 1 || !strings.Contains(out, "found data inconsistency with peers") ||
		!strings.Contains(out, "found different hash values from remote peer") {
		t.Fatalf("damaged member with the gate: exited %v, status %d; want exit status 1 with etcd's data inconsistency error; output:\n%s", exited, code, out)
	}
	if strings.Contains(out, framework.ReadyLine) {
		t.Fatalf("the damaged member served before refusing to start:\n%s", out)
	}

	// Without the gate it starts; the periodic check flags it.
	damaged.StartAgain()
	corruptCheckAlarm(t, ctx, c, damaged)
}

// damageStoredValue flips a bit of the stored version whose value ends
// with suffix in stopped member m's data: metastore's Pebble engine or, for
// etcd, its bbolt file (whose "key" bucket holds each version as a
// KeyValue message that ends with the value when there is no lease).
func damageStoredValue(t *testing.T, m *framework.Member, suffix string) {
	t.Helper()
	db := filepath.Join(m.DataDir, "member", "snap", "db")
	if _, err := os.Stat(db); err != nil {
		damageValueStopped(t, m, suffix) // metastore (corruption_test.go)
		return
	}
	b, err := bolt.Open(db, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	check(t, "open etcd's bbolt file", err)
	defer func() { check(t, "close etcd's bbolt file", b.Close()) }()
	err = b.Update(func(tx *bolt.Tx) error {
		bucket := tx.Bucket([]byte("key"))
		if bucket == nil {
			return errors.New("no key bucket")
		}
		var key, val []byte
		err := bucket.ForEach(func(k, v []byte) error {
			if bytes.HasSuffix(v, []byte(suffix)) {
				key, val = append([]byte(nil), k...), append([]byte(nil), v...)
			}
			return nil
		})
		if err != nil || key == nil {
			return errors.Join(err, errors.New("no version ending in "+suffix))
		}
		val[len(val)-1] ^= 0x01
		return bucket.Put(key, val)
	})
	check(t, "damage etcd's stored value", err)
}
