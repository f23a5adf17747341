package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

// Issue 11: many concurrent unpaginated LISTs of a big prefix must not
// each materialise their whole response at once.

const (
	budgetKeys     = 2000
	budgetValueLen = 2 << 10
	budgetBytes    = 4 << 20
	// budgetResponse over-estimates what the server charges for one LIST
	// of the prefix: key and value twice (decoded and encoded) and 128
	// bytes of overhead per key-value.
	budgetResponse = budgetKeys * (2*(budgetValueLen+16) + 128)
	budgetLists    = 12
)

func budgetValue(i int) string {
	return strings.Repeat(fmt.Sprintf("%06d", i), budgetValueLen/6+1)[:budgetValueLen]
}

// TestListBudgetBoundsConcurrentLists runs twelve concurrent LISTs (unary
// Range and RangeStream), each larger than the whole
// --max-range-bytes-in-flight, until some had to wait: every
// one succeeds with the full data, the ranges did queue, the bytes in flight
// never exceeded the budget plus one response (without the budget they would
// reach twelve responses), and a point read meanwhile is not held up.
func TestListBudgetBoundsConcurrentLists(t *testing.T) {
	relMetastoreOnly(t)
	m, metricsURL := relStart(t, framework.Options{ExtraArgs: []string{"--max-range-bytes-in-flight", fmt.Sprint(budgetBytes), "--unsafe-no-fsync"}})
	c := m.Client()
	ctx := relCtx(t, 3*time.Minute)
	for i := 0; i < budgetKeys; i += 100 {
		var ops []clientv3.Op
		for j := i; j < i+100; j++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("/big/%06d", j), budgetValue(j)))
		}
		if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatalf("load: %v", err)
		}
	}
	mustPut(t, c, ctx, "/small", "v")
	if got := relScrape(t, metricsURL).sum("metastore_range_bytes_in_flight_limit"); got != budgetBytes {
		t.Fatalf("metastore_range_bytes_in_flight_limit = %v, want %d", got, budgetBytes)
	}

	// Rounds until ranges have had to wait for the budget (the first round
	// nearly always suffices); every round checks every result.
	for round := 0; relScrape(t, metricsURL).sum("metastore_range_budget_waits_total") == 0; round++ {
		if round == 10 {
			t.Fatal("10 rounds of concurrent LISTs and none waited for the budget")
		}
		t0 := time.Now()
		budgetRound(t, ctx, m)
		t.Logf("round %d: %v", round, time.Since(t0))
	}
	met := relScrape(t, metricsURL)
	t.Logf("peak %v, waits %v, overdrafts %v", met.sum("metastore_range_bytes_in_flight_peak"), met.sum("metastore_range_budget_waits_total"), met.sum("metastore_range_budget_overdrafts_total"))
	if peak, bound := met.sum("metastore_range_bytes_in_flight_peak"), float64(budgetBytes+budgetResponse+(1<<20)); peak <= 0 || peak > bound {
		t.Fatalf("peak bytes in flight %v, want in (0, %v] (budget + one response + one grain)", peak, bound)
	}
	if got := met.sum("metastore_range_bytes_in_flight"); got != 0 {
		t.Fatalf("metastore_range_bytes_in_flight = %v after every LIST completed, want 0", got)
	}
	if got := met.sum("metastore_range_budget_rejected_total"); got != 0 {
		t.Fatalf("%v ranges rejected", got)
	}
}

// budgetRound runs the concurrent LISTs, with point reads while they run.
func budgetRound(t *testing.T, ctx context.Context, m *framework.Member) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, budgetLists+1)
	stop := make(chan struct{})
	for i := range budgetLists {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half of them through RangeStream, charged chunk by chunk.
			var resp *clientv3.GetResponse
			var err error
			if i%2 == 0 {
				resp, err = m.Client().Get(ctx, "/big/", clientv3.WithPrefix())
			} else {
				var ch clientv3.GetStreamChan
				if ch, err = m.Client().GetStream(ctx, "/big/", clientv3.WithPrefix()); err == nil {
					resp, err = clientv3.GetStreamToGetResponse(ch)
				}
			}
			if err != nil {
				errs <- fmt.Errorf("LIST: %w", err)
				return
			}
			if len(resp.Kvs) != budgetKeys || resp.Count != budgetKeys {
				errs <- fmt.Errorf("LIST: %d kvs, count %d, want %d", len(resp.Kvs), resp.Count, budgetKeys)
				return
			}
			for i, kv := range resp.Kvs {
				if string(kv.Key) != fmt.Sprintf("/big/%06d", i) || !bytes.Equal(kv.Value, []byte(budgetValue(i))) {
					errs <- fmt.Errorf("LIST: kv %d is %q", i, kv.Key)
					return
				}
			}
		}()
	}
	// Point reads below the free size never wait for the budget: each
	// must answer well within its own short deadline while the LISTs run.
	var small sync.WaitGroup
	small.Add(1)
	go func() {
		defer small.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			resp, err := m.Client().Get(sctx, "/small")
			cancel()
			if err != nil || len(resp.Kvs) != 1 {
				errs <- fmt.Errorf("point read during the LISTs: %v", err)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	small.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestMemorySizingFlagsActedOn starts the binary with each memory-sizing
// flag and reads what is in force from /metrics.
func TestMemorySizingFlagsActedOn(t *testing.T) {
	relMetastoreOnly(t)
	_, metricsURL := relStart(t, framework.Options{ExtraArgs: []string{
		"--memory-limit-bytes", "1GiB",
		"--storage-block-cache-bytes", "32MiB",
		"--storage-memtable-bytes", "8MiB",
	}})
	met := relScrape(t, metricsURL)
	for name, want := range map[string]float64{
		"metastore_go_memory_limit_bytes":       1 << 30,
		"metastore_storage_block_cache_bytes":   32 << 20,
		"metastore_storage_memtable_bytes":      8 << 20,
		"metastore_range_bytes_in_flight_limit": 128 << 20, // an eighth of the memory limit
	} {
		if got := met.sum(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestMemorySizingFlagsBadValues: each bad value stops the binary with exit
// status 2 and one line naming the flag.
func TestMemorySizingFlagsBadValues(t *testing.T) {
	relMetastoreOnly(t)
	bin := framework.ServerBinary(t)
	for _, args := range [][]string{
		{"--max-range-bytes-in-flight", "-5"},
		{"--max-range-bytes-in-flight", "1000"},
		{"--storage-block-cache-bytes", "lots"},
		{"--storage-block-cache-bytes", "0"},
		{"--storage-memtable-bytes", "8GiB"},
		{"--storage-key-cache-bytes", "1000"},
		{"--storage-key-cache-bytes", "-1"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, append(args, "--data-dir", t.TempDir())...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%q: %v, want exit status 2", args, err)
		}
		line := strings.TrimSuffix(stderr.String(), "\n")
		if strings.Contains(line, "\n") || !strings.Contains(line, args[0]) {
			t.Errorf("%q: stderr %q, want one line naming %s", args, stderr.String(), args[0])
		}
	}
}

// TestKeyCacheFlag: --storage-key-cache-bytes sizes the cache of keys'
// newest versions (ADR 15). With 0 it holds nothing; with 1 MiB and the
// metadata of ~9,000 keys (about 1.2 MiB: the cache holds metadata, and
// values only of keys read by key, ADR 19) it fills to its budget and falls
// back to the engine past it;
// either way every answer through clientv3 is the same: newest and older
// versions, prev_kv of overwrites and deletes, version compares in a txn.
func TestKeyCacheFlag(t *testing.T) {
	relMetastoreOnly(t)
	answers := map[string]string{}
	for _, size := range []string{"0", "1MiB"} {
		m, metricsURL := relStart(t, framework.Options{ExtraArgs: []string{"--storage-key-cache-bytes", size, "--unsafe-no-fsync"}})
		c := m.Client()
		ctx := relCtx(t, 2*time.Minute)
		var sb strings.Builder
		val := strings.Repeat("v", 1024)
		for i := range 2048 {
			mustPut(t, c, ctx, fmt.Sprintf("/kc/%04d", i%1024), fmt.Sprintf("%d%s", i, val))
		}
		// Filler keys whose metadata alone overflows a 1 MiB cache, written
		// in transactions of 128 puts (etcd's default --max-txn-ops).
		for b := range 64 {
			ops := make([]clientv3.Op, 0, 128)
			for i := range 128 {
				ops = append(ops, clientv3.OpPut(fmt.Sprintf("/kf/%05d", b*128+i), "f"))
			}
			if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 1024; i += 97 {
			k := fmt.Sprintf("/kc/%04d", i)
			r := mustGet(t, c, ctx, k)
			old := mustGet(t, c, ctx, k, clientv3.WithRev(r.Kvs[0].ModRevision-1024))
			tr, err := c.Txn(ctx).If(clientv3.Compare(clientv3.Version(k), "=", 2)).Then(clientv3.OpPut(k, "t", clientv3.WithPrevKV())).Commit()
			if err != nil {
				t.Fatal(err)
			}
			d := mustDel(t, c, ctx, k, clientv3.WithPrevKV())
			fmt.Fprintf(&sb, "%s v%d m%d c%d old=%.4s/%d txn=%v prev=%.4s del=%d prev=%q;", k, r.Kvs[0].Version, r.Kvs[0].ModRevision,
				r.Kvs[0].CreateRevision, old.Kvs[0].Value, old.Kvs[0].Version, tr.Succeeded, tr.Responses[0].GetResponsePut().PrevKv.Value, d.Deleted, d.PrevKvs[0].Value)
			if g := mustGet(t, c, ctx, k); len(g.Kvs) != 0 {
				t.Fatalf("cache %s: %s still there after its delete", size, k)
			}
		}
		answers[size] = sb.String()
		met := relScrape(t, metricsURL)
		limit, held := met.sum("metastore_storage_key_cache_limit_bytes"), met.sum("metastore_storage_key_cache_bytes")
		t.Logf("--storage-key-cache-bytes %s: cache holds %v of %v bytes", size, held, limit)
		switch {
		case size == "0" && (limit != 0 || held != 0):
			t.Errorf("cache off: limit %v, held %v; want 0 and 0", limit, held)
		case size == "1MiB" && (limit != 1<<20 || held < 512<<10 || held > 1<<20):
			t.Errorf("1 MiB cache after ~1.2 MiB of metadata: holds %v bytes (limit %v), want between 512 KiB and 1 MiB", held, limit)
		}
	}
	if answers["0"] != answers["1MiB"] {
		t.Fatalf("answers differ with the cache off and with it overflowing:\n%s\n%s", answers["0"], answers["1MiB"])
	}
}
