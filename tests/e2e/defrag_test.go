package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/metastore/metastore/tests/framework"
)

// dirSize is the bytes of the regular files under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // a file removed under our feet
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	check(t, "size of "+dir, err)
	return n
}

func dbSize(t *testing.T, c *clientv3.Client, ctx context.Context, ep string) int64 {
	t.Helper()
	st, err := c.Status(ctx, ep)
	check(t, "status", err)
	return st.DbSize
}

// TestDefragReclaimsSpace is the operator's `etcdctl compact` + `etcdctl
// defrag`: 48 MiB of values are written, deleted and compacted away, and
// the defragmentation gives the space back (Status dbSize, and on metastore
// the data dir, which holds the whole store: at least half of what was
// written) while writes issued during it
// succeed; every key kept is intact. It passes against etcd-ref too.
func TestDefragReclaimsSpace(t *testing.T) {
	// A short Raft log (--snapshot-count): the values must leave the log
	// too, on metastore (where the log lives in the store) and on etcd.
	m, c, ctx := setup(t, "--snapshot-count", "20", "--snapshot-catchup-entries", "5")
	rnd := rand.NewChaCha8([32]byte{14})
	const big, bigSize = 480, 100 << 10
	value := make([]byte, bigSize)
	kept := map[string]string{} // every key that must survive, with its value
	keep := func(k, v string) int64 {
		kept[k] = v
		return mustPut(t, c, ctx, k, v).Header.Revision
	}
	for i := range 20 {
		keep(fmt.Sprintf("keep/%02d", i), fmt.Sprint("kept-", i))
	}
	for i := range big {
		_, _ = rnd.Read(value) // incompressible
		mustPut(t, c, ctx, fmt.Sprintf("big/%03d", i), string(value))
	}
	full, fullDir := dbSize(t, c, ctx, m.ClientURL), dirSize(t, m.DataDir)
	mustDel(t, c, ctx, "big/", clientv3.WithPrefix())
	// Writes after the delete move the Raft log past the values.
	for i := range 40 {
		keep(fmt.Sprintf("keep/after/%02d", i), fmt.Sprint("after-", i))
	}
	rev := keep("keep/last", "last")
	m.MustEtcdctl("compact", fmt.Sprint(rev), "--physical")
	compacted := dbSize(t, c, ctx, m.ClientURL)

	// Writers run across the defragmentation; each write must succeed.
	wctx, stopWriters := context.WithCancel(ctx)
	type ack struct {
		key string
		err error
	}
	acks := make(chan ack, 1024)
	go func() {
		defer close(acks)
		for i := 0; i < 1000 && wctx.Err() == nil; i++ {
			k := fmt.Sprintf("keep/during/%03d", i)
			_, err := c.Put(ctx, k, k)
			acks <- ack{k, err}
		}
	}()
	out := m.MustEtcdctl("defrag", "--command-timeout", "2m")
	stopWriters()
	if !strings.Contains(out, "Finished defragmenting etcd member["+m.ClientURL+"]") {
		t.Errorf("etcdctl defrag said %q", out)
	}
	for a := range acks {
		check(t, "put during defrag", a.err)
		kept[a.key] = a.key
	}

	logEntry(t, m, "defragmenting", func(e map[string]any) bool { return e["current-db-size-bytes"] != nil })
	logEntry(t, m, "finished defragmenting directory", func(e map[string]any) bool {
		return e["took"] != nil && e["current-db-size-bytes-diff"] != nil
	})
	// At least half of the bytes written must be given back (etcd gives
	// back nearly all: its file is rewritten; metastore keeps, besides the
	// tables, a fixed set of write-ahead log files that Pebble recycles,
	// a few memtables' worth whatever the data). Pebble deletes the
	// replaced files just after the compaction ends.
	const written = big * bigSize
	var after int64
	err := framework.WaitFor(30*time.Second, 50*time.Millisecond, func() (bool, error) {
		after = dbSize(t, c, ctx, m.ClientURL)
		return full-after >= written/2, nil
	})
	t.Logf("dbSize: %d with the values, %d after delete+compact, %d after defrag; data dir %d before",
		full, compacted, after, fullDir)
	if full < written || err != nil {
		t.Fatalf("dbSize %d after writing %d bytes, %d after defrag: want at least half of them back", full, written, after)
	}
	if ours() {
		// The data dir is the store (etcd's also holds its WAL files, which
		// keep the values until they are purged).
		var afterDir int64
		err := framework.WaitFor(30*time.Second, 50*time.Millisecond, func() (bool, error) {
			afterDir = dirSize(t, m.DataDir)
			return fullDir-afterDir >= written/2, nil
		})
		t.Logf("data dir: %d bytes after defrag", afterDir)
		if err != nil {
			t.Fatalf("data dir %d bytes with the values, %d after defrag: want at least half of the %d written back", fullDir, afterDir, written)
		}
	}

	if n := mustGet(t, c, ctx, "big/", clientv3.WithPrefix(), clientv3.WithCountOnly()).Count; n != 0 {
		t.Fatalf("%d deleted keys back", n)
	}
	got := mustGet(t, c, ctx, "keep/", clientv3.WithPrefix())
	if len(got.Kvs) != len(kept) {
		t.Fatalf("%d keys kept, want %d", len(got.Kvs), len(kept))
	}
	for _, kv := range got.Kvs {
		if want, ok := kept[string(kv.Key)]; !ok || string(kv.Value) != want {
			t.Errorf("%s = %q after defrag, want %q", kv.Key, kv.Value, want)
		}
	}
}

// healthOf is the member's gRPC health status for all services ("").
func healthOf(t *testing.T, ctx context.Context, c *clientv3.Client) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := healthpb.NewHealthClient(c.ActiveConnection()).Check(ctx, &healthpb.HealthCheckRequest{})
	check(t, "grpc health check", err)
	return resp.GetStatus()
}

// TestDefragHealthGate checks --feature-gates=StopGRPCServiceOnDefrag: with
// it, the gRPC health service reports NOT_SERVING while a Defragment runs
// and SERVING once it returns; without it, SERVING throughout. The
// defragmentation is held mid-way by the defragBeforeCopy failpoint (so
// the member is looked at while it is certainly under way), during which
// reads and writes are served and a second Defragment waits its turn.
// Metastore only: etcd-ref is not built with failpoints.
func TestDefragHealthGate(t *testing.T) {
	if !ours() {
		t.Skip("holding a defragmentation needs metastore built with -tags failpoints")
	}
	for _, gate := range []bool{true, false} {
		t.Run(fmt.Sprintf("StopGRPCServiceOnDefrag=%t", gate), func(t *testing.T) {
			opts := framework.Options{}
			if gate {
				opts.ExtraArgs = []string{"--feature-gates", "StopGRPCServiceOnDefrag=true"}
			}
			m := framework.Start(t, framework.WithFailpoints(t, opts))
			c := m.Client()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			mustPut(t, c, ctx, "k", "before")
			err := framework.WaitFor(30*time.Second, 20*time.Millisecond, func() (bool, error) {
				return healthOf(t, ctx, c) == healthpb.HealthCheckResponse_SERVING, nil
			})
			check(t, "SERVING before the defrag", err)

			check(t, "hold defrag", m.SetFailpoint("defragBeforeCopy", "return(true)"))
			done := make(chan error, 1)
			go func() {
				_, err := c.Defragment(ctx, m.ClientURL)
				done <- err
			}()
			// Logged after the health flip, before the hold.
			logEntry(t, m, "defragmenting", func(map[string]any) bool { return true })
			want := healthpb.HealthCheckResponse_SERVING
			if gate {
				want = healthpb.HealthCheckResponse_NOT_SERVING
			}
			if got := healthOf(t, ctx, c); got != want {
				t.Fatalf("health %v during the defrag, want %v", got, want)
			}
			mustPut(t, c, ctx, "k", "during")
			if v := string(mustGet(t, c, ctx, "k").Kvs[0].Value); v != "during" {
				t.Fatalf("read %q during the defrag", v)
			}
			wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
			_, err = c.Defragment(wctx, m.ClientURL)
			wcancel()
			if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(fmt.Sprint(err), "deadline exceeded") {
				t.Fatalf("a second defrag while one runs: %v, want it to wait (deadline exceeded)", err)
			}
			select {
			case err := <-done:
				t.Fatalf("defrag returned while held: %v", err)
			default:
			}
			if got := healthOf(t, ctx, c); got != want {
				t.Fatalf("health %v later during the defrag, want %v", got, want)
			}

			check(t, "release defrag", m.SetFailpoint("defragBeforeCopy", "off"))
			select {
			case err := <-done:
				check(t, "defrag", err)
			case <-ctx.Done():
				t.Fatal("defrag did not return after the failpoint was released")
			}
			if got := healthOf(t, ctx, c); got != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health %v after the defrag, want SERVING", got)
			}
			logEntry(t, m, "finished defragmenting directory", func(map[string]any) bool { return true })
			if v := string(mustGet(t, c, ctx, "k").Kvs[0].Value); v != "during" {
				t.Fatalf("read %q after the defrag", v)
			}
		})
	}
}
