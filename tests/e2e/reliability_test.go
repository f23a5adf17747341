package e2e

// End-to-end proof of the reliability layer (internal/lifecycle, internal/middleware, server/reliability.go) through
// the real binary: graceful shutdown, panic recovery, resource limits,
// health, metrics, detection of on-disk corruption and the NOSPACE alarm.
// Each test fails if the feature it covers were missing. The flags and
// metrics driven here are metastore's own, so these tests are skipped when
// the suite runs against another server binary.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/tests/framework"
)

// relPanicKeyEnv is the server's test-only fault: a Put of this key panics
// inside the server.
const relPanicKeyEnv = "METASTORE_TESTING_PANIC_KEY"

// relMetastoreOnly skips a test when the suite drives a server binary other
// than metastore (e.g. the reference etcd), which has none of these flags.
func relMetastoreOnly(t *testing.T) {
	t.Helper()
	if bin := os.Getenv(framework.EnvServerBin); bin != "" && !strings.Contains(filepath.Base(bin), "metastore") {
		t.Skipf("the reliability layer is metastore's own; %s=%s", framework.EnvServerBin, bin)
	}
}

// relStart starts a member with a separate --listen-metrics-urls listener
// and returns it with that listener's base URL.
func relStart(t *testing.T, opts framework.Options) (*framework.Member, string) {
	t.Helper()
	port, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	opts.ExtraArgs = append([]string{"--listen-metrics-urls", metricsURL}, opts.ExtraArgs...)
	return framework.Start(t, opts), metricsURL
}

func relCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// relCode is the gRPC code of an error returned by clientv3, which turns
// known statuses into rpctypes.EtcdError and cancellations into ctx errors.
func relCode(err error) codes.Code {
	var ee rpctypes.EtcdError
	switch {
	case err == nil:
		return codes.OK
	case errors.As(err, &ee):
		return ee.Code()
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return status.Code(err)
}

func relHTTPGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// relMetrics is one scrape of /metrics: series text (name{labels}) → value.
type relMetrics map[string]float64

func relScrape(t *testing.T, baseURL string) relMetrics {
	t.Helper()
	code, body := relHTTPGet(t, baseURL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET %s/metrics: status %d", baseURL, code)
	}
	m := relMetrics{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metrics value in %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func relSeriesName(series string) string {
	if i := strings.IndexByte(series, '{'); i >= 0 {
		return series[:i]
	}
	return series
}

// has reports whether any series of the metric family name is exposed
// (histograms as name_bucket, name_sum, name_count).
func (m relMetrics) has(name string) bool {
	for s := range m {
		switch relSeriesName(s) {
		case name, name + "_bucket", name + "_sum", name + "_count":
			return true
		}
	}
	return false
}

// sum adds up every series of name whose labels contain all of labels
// (each `k="v"`).
func (m relMetrics) sum(name string, labels ...string) float64 {
	var total float64
outer:
	for s, v := range m {
		if relSeriesName(s) != name {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(s, l) {
				continue outer
			}
		}
		total += v
	}
	return total
}

// ---------------------------------------------------------------------------
// Graceful shutdown

var relPhases = []string{"stop-accepting", "drain", "persist", "close"}

// relShutdownEvents returns "started:<phase>" / "finished:<phase>" in log
// order, and whether any phase finished with an error or the shutdown as a
// whole reported errors.
func relShutdownEvents(t *testing.T, logText string) (events []string, problems []string) {
	t.Helper()
	for _, line := range strings.Split(logText, "\n") {
		if !strings.HasPrefix(line, "{") || !strings.Contains(line, "shutdown") {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			continue
		}
		phase, _ := e["phase"].(string)
		switch e["msg"] {
		case "shutdown phase started":
			events = append(events, "started:"+phase)
		case "shutdown phase finished":
			events = append(events, "finished:"+phase)
			if e["error"] != nil {
				problems = append(problems, fmt.Sprintf("phase %s: %v", phase, e["error"]))
			}
		case "shutdown finished with errors", "graceful shutdown failed":
			problems = append(problems, fmt.Sprintf("%v: %v", e["msg"], e["error"]))
		}
	}
	return events, problems
}

// TestReliabilityGracefulShutdown SIGTERMs a member while 32 clients write
// unique keys: the process must exit 0 after logging the four phases in
// order, every acknowledged Put must survive a restart with its revision,
// and every other Put must end with a clean error, not hang.
func TestReliabilityGracefulShutdown(t *testing.T) {
	relMetastoreOnly(t)
	const (
		workers  = 32
		warmAcks = 300 // acknowledged puts before SIGTERM
	)
	m := framework.Start(t, framework.Options{ExtraArgs: []string{"--shutdown-timeout", "10s"}})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		acked map[string]int64 // key → revision in the put response
		codes map[codes.Code]int
		bad   []error
	}
	results := make([]outcome, workers)
	warm := make(chan struct{})
	var acked atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		c := m.Client() // one connection per worker
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := outcome{acked: map[string]int64{}, codes: map[codes.Code]int{}}
			defer func() { results[w] = res }()
			for i := 0; i < 100000 && ctx.Err() == nil; i++ {
				key := fmt.Sprintf("gs/%02d/%06d", w, i)
				octx, ocancel := context.WithTimeout(ctx, 15*time.Second)
				r, err := c.Put(octx, key, key)
				ocancel()
				code := relCode(err)
				res.codes[code]++
				switch code {
				case codes.OK:
					res.acked[key] = r.Header.Revision
					if acked.Add(1) == warmAcks {
						close(warm)
					}
				case codes.Unavailable, codes.Canceled:
					// A clean refusal while the member goes away.
				default:
					res.bad = append(res.bad, fmt.Errorf("put %s: %w (code %v)", key, err, code))
				}
			}
		}()
	}
	select {
	case <-warm:
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("only %d puts acknowledged in 30s before shutdown", acked.Load())
	}
	m.Stop() // SIGTERM; fails the test unless the process exits within 20s
	exitErr := m.ExitError()
	stopLog := m.Logs()
	// The member is gone: writers blocked waiting for a connection end now.
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("writers still blocked 15s after the member exited and their context was cancelled")
	}

	if exitErr != nil {
		t.Errorf("exit after SIGTERM: %v, want status 0", exitErr)
	}
	events, problems := relShutdownEvents(t, stopLog)
	var want []string
	for _, p := range relPhases {
		want = append(want, "started:"+p, "finished:"+p)
	}
	if !slices.Equal(events, want) {
		t.Errorf("shutdown log events = %v, want %v", events, want)
	}
	if len(problems) > 0 {
		t.Errorf("shutdown reported errors: %v", problems)
	}

	allAcked := map[string]int64{}
	total := map[codes.Code]int{}
	for _, r := range results {
		for k, v := range r.acked {
			allAcked[k] = v
		}
		for c, n := range r.codes {
			total[c] += n
		}
		for _, err := range r.bad {
			t.Errorf("in-flight put did not end cleanly: %v", err)
		}
	}
	t.Logf("puts by outcome: %v (%d acknowledged)", total, len(allAcked))

	m.StartAgain()
	c := m.Client()
	rctx := relCtx(t, 30*time.Second)
	resp, err := c.Get(rctx, "gs/", clientv3.WithPrefix())
	check(t, "range after restart", err)
	present := map[string]int64{}
	revs := map[int64]string{}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if string(kv.Value) != k {
			t.Errorf("key %s has value %q after restart", k, kv.Value)
		}
		if other, dup := revs[kv.ModRevision]; dup {
			t.Errorf("keys %s and %s share mod revision %d", other, k, kv.ModRevision)
		}
		revs[kv.ModRevision] = k
		present[k] = kv.ModRevision
	}
	lost := 0
	for k, rev := range allAcked {
		got, ok := present[k]
		switch {
		case !ok:
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged put %s (revision %d) lost across graceful restart", k, rev)
			}
		case got != rev:
			t.Errorf("key %s: mod revision %d after restart, put was acknowledged at %d", k, got, rev)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged puts lost", lost, len(allAcked))
	}
}

// TestReliabilityShutdownWithStreams SIGTERMs a member while a client
// holds a watch and a lease keep-alive stream open, as every Kubernetes API
// server does: the streams are long-lived, so the drain phase must end them
// rather than wait for them, and the member must exit 0 well within
// --shutdown-timeout.
func TestReliabilityShutdownWithStreams(t *testing.T) {
	relMetastoreOnly(t)
	const shutdownTimeout = 3 * time.Second
	m := framework.Start(t, framework.Options{ExtraArgs: []string{"--shutdown-timeout", shutdownTimeout.String()}})
	ctx := relCtx(t, 60*time.Second)
	c := m.Client()
	wch := c.Watch(ctx, "streams/", clientv3.WithPrefix())
	mustPut(t, c, ctx, "streams/a", "1")
	select {
	case wr := <-wch:
		if err := wr.Err(); err != nil || len(wr.Events) != 1 {
			t.Fatalf("watch: %v %v", err, wr.Events)
		}
	case <-ctx.Done():
		t.Fatal("no watch event")
	}
	lease, err := c.Grant(ctx, 60)
	check(t, "grant", err)
	ka, err := c.KeepAlive(ctx, lease.ID)
	check(t, "keep-alive", err)
	if _, ok := <-ka; !ok {
		t.Fatal("keep-alive channel closed at once")
	}

	begin := time.Now()
	m.Stop()
	took := time.Since(begin)
	exitErr := m.ExitError()
	_, problems := relShutdownEvents(t, m.Logs())
	if exitErr != nil || took >= shutdownTimeout {
		t.Fatalf("with a watch and a keep-alive stream open, SIGTERM took %v (--shutdown-timeout %v) and exited with %v: %v",
			took.Round(time.Millisecond), shutdownTimeout, exitErr, problems)
	}
	if len(problems) > 0 {
		t.Errorf("shutdown reported errors: %v", problems)
	}
}

// ---------------------------------------------------------------------------
// Panic recovery

// TestReliabilityPanicRecovery makes the server panic inside a Put handler
// while other Puts run concurrently: the panicking request gets
// codes.Internal, the others succeed, the process keeps serving, and
// metastore_panic_total counts each panic once.
func TestReliabilityPanicRecovery(t *testing.T) {
	relMetastoreOnly(t)
	const (
		panicKey = "reliability/panic-key"
		workers  = 8
		perWork  = 25
		panics   = 5
	)
	m, metricsURL := relStart(t, framework.Options{Env: []string{relPanicKeyEnv + "=" + panicKey}})
	ctx := relCtx(t, 60*time.Second)
	c := m.Client()
	mustPut(t, c, ctx, "reliability/warm", "x")
	before := relScrape(t, metricsURL)

	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWork+panics)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range perWork {
				key := fmt.Sprintf("reliability/ok/%d/%d", w, i)
				if _, err := c.Put(ctx, key, key); err != nil {
					errs <- fmt.Errorf("normal put %s during panics: %w", key, err)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-start
		for i := range panics {
			begin := time.Now()
			_, err := c.Put(ctx, panicKey, fmt.Sprint(i))
			if code := relCode(err); code != codes.Internal {
				errs <- fmt.Errorf("put of the panic key: err %v (code %v), want codes.Internal", err, code)
			}
			if d := time.Since(begin); d > 5*time.Second {
				errs <- fmt.Errorf("put of the panic key took %v", d)
			}
		}
	}()
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	if !m.Running() {
		t.Fatal("the server process died after recovered panics")
	}
	mustPut(t, c, ctx, "reliability/after", "still serving")
	if got := mustGet(t, c, ctx, "reliability/after"); len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "still serving" {
		t.Fatalf("get after panics: %v", got.Kvs)
	}
	if got := mustGet(t, c, ctx, "reliability/ok/", clientv3.WithPrefix(), clientv3.WithCountOnly()); got.Count != workers*perWork {
		t.Errorf("%d normal keys stored, want %d", got.Count, workers*perWork)
	}
	if got := mustGet(t, c, ctx, panicKey); len(got.Kvs) != 0 {
		t.Errorf("the panicking put was applied: %v", got.Kvs)
	}
	after := relScrape(t, metricsURL)
	if d := after.sum("metastore_panic_total") - before.sum("metastore_panic_total"); d != panics {
		t.Errorf("metastore_panic_total rose by %v, want %d", d, panics)
	}
	if d := after.sum("grpc_server_handled_total", `grpc_method="Put"`, `grpc_code="Internal"`) -
		before.sum("grpc_server_handled_total", `grpc_method="Put"`, `grpc_code="Internal"`); d != panics {
		t.Errorf("grpc_server_handled_total{Put,Internal} rose by %v, want %d", d, panics)
	}
	if !strings.Contains(m.Logs(), "injected panic for key "+panicKey) {
		t.Error("the recovered panic is not in the server log")
	}
}

// ---------------------------------------------------------------------------
// Resource limits

func TestReliabilityLimits(t *testing.T) {
	relMetastoreOnly(t)
	t.Run("RequestsInFlight", relTestInFlight)
	t.Run("MaxConnections", relTestMaxConnections)
	t.Run("RateLimitPerClientIP", relTestRateLimit)
	t.Run("MemoryWatermark", relTestMemoryWatermark)
}

// relTestInFlight floods a member limited to 4 requests in flight with
// slow linearizable ranges: some are refused at once with etcd's "too many
// requests", the others succeed, and the member lives on.
func relTestInFlight(t *testing.T) {
	const (
		limit    = 4
		keys     = 512
		valSize  = 4 << 10
		parallel = 24
	)
	// The smallest response budget (1 MiB, below one 2 MiB range) makes the
	// accepted ranges wait for each other inside the member (respbudget:
	// one builds, the others wait for its budget until gRPC encoded it), so
	// the four slots stay taken while the other ranges arrive. Without it a
	// member on a quiet moment could finish each range before the next one
	// arrived: CI once saw 24 of 24 succeed.
	m, metricsURL := relStart(t, framework.Options{ExtraArgs: []string{
		"--max-requests-in-flight", strconv.Itoa(limit), "--max-range-bytes-in-flight", strconv.Itoa(1 << 20)}})
	ctx := relCtx(t, 60*time.Second)
	c := m.Client()
	rng := rand.New(rand.NewPCG(1, 2))
	val := make([]byte, valSize)
	for i := 0; i < keys; i += 64 {
		var ops []clientv3.Op
		for j := i; j < i+64; j++ {
			for k := range val {
				val[k] = byte(rng.Uint32())
			}
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("big/%04d", j), string(val)))
		}
		if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatalf("load: %v", err)
		}
	}

	clients := []*clientv3.Client{c, m.Client(), m.Client(), m.Client()}
	start := make(chan struct{})
	type result struct {
		code codes.Code
		err  error
		took time.Duration
	}
	results := make(chan result, parallel)
	var wg sync.WaitGroup
	for i := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			begin := time.Now()
			r, err := clients[i%len(clients)].Get(ctx, "big/", clientv3.WithPrefix())
			if err == nil && len(r.Kvs) != keys {
				err = fmt.Errorf("range returned %d keys, want %d", len(r.Kvs), keys)
			}
			results <- result{relCode(err), err, time.Since(begin)}
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	var ok, refused int
	var slowestRefusal time.Duration
	for r := range results {
		switch {
		case r.err == nil:
			ok++
		case errors.Is(r.err, rpctypes.ErrTooManyRequests):
			refused++
			slowestRefusal = max(slowestRefusal, r.took)
		default:
			t.Errorf("range under load: %v (code %v), want success or %q", r.err, r.code, rpctypes.ErrTooManyRequests)
		}
	}
	t.Logf("%d ranges succeeded, %d refused (slowest refusal %v)", ok, refused, slowestRefusal)
	if refused == 0 {
		t.Errorf("no request refused with %d concurrent ranges and --max-requests-in-flight=%d", parallel, limit)
	}
	if ok < limit {
		t.Errorf("only %d ranges succeeded; at least %d should", ok, limit)
	}
	if slowestRefusal > 2*time.Second {
		t.Errorf("a refusal took %v: over the limit requests must fail at once, not queue", slowestRefusal)
	}
	if !m.Running() {
		t.Fatal("member died under load")
	}
	mustPut(t, c, ctx, "after-load", "ok")
	mets := relScrape(t, metricsURL)
	if got := mets.sum("metastore_requests_rejected_total", `reason="too_many_requests"`); got != float64(refused) {
		t.Errorf("metastore_requests_rejected_total{too_many_requests} = %v, want %d", got, refused)
	}
}

// relTestMaxConnections fills --max-connections with raw TCP connections:
// one more is closed at once while the existing gRPC client keeps working,
// and a slot freed is usable again.
func relTestMaxConnections(t *testing.T) {
	const limit = 4
	m, metricsURL := relStart(t, framework.Options{ExtraArgs: []string{"--max-connections", strconv.Itoa(limit)}})
	ctx := relCtx(t, 60*time.Second)
	c := m.Client()
	mustPut(t, c, ctx, "conn/a", "1")
	addr := strings.TrimPrefix(m.ClientURL, "http://")

	var raw []net.Conn
	t.Cleanup(func() {
		for _, rc := range raw {
			rc.Close()
		}
	})
	dial := func() net.Conn {
		t.Helper()
		rc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		return rc
	}
	// isOpen reports whether the server keeps rc open (a read times out)
	// rather than closing it (EOF or reset). A raw connection sends
	// nothing, so the server has nothing to answer.
	isOpen := func(rc net.Conn, wait time.Duration) bool {
		t.Helper()
		_ = rc.SetReadDeadline(time.Now().Add(wait))
		_, err := rc.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return true
		}
		if err == nil {
			t.Fatal("server sent bytes on a raw TCP connection that sent nothing")
		}
		return false
	}
	// Fill the free slots: the gRPC client's connection (and any left by
	// the framework's readiness probe) hold the others.
	for len(raw) <= limit {
		rc := dial()
		if !isOpen(rc, 300*time.Millisecond) {
			rc.Close()
			break
		}
		raw = append(raw, rc)
	}
	if others := limit - len(raw); others < 1 || others > 2 {
		t.Fatalf("%d raw connections accepted with --max-connections=%d; want the limit minus the client's connection", len(raw), limit)
	}

	extra := dial()
	begin := time.Now()
	if isOpen(extra, 5*time.Second) {
		t.Fatalf("a connection over --max-connections=%d was kept open", limit)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("a connection over the limit was closed only after %v", d)
	}
	extra.Close()
	for _, rc := range raw {
		if !isOpen(rc, 50*time.Millisecond) {
			t.Fatal("a connection under the limit was closed")
		}
	}
	// The client's existing connection still serves.
	mustPut(t, c, ctx, "conn/b", "2")
	if got := mustGet(t, c, ctx, "conn/", clientv3.WithPrefix(), clientv3.WithCountOnly()); got.Count != 2 {
		t.Fatalf("count = %d, want 2", got.Count)
	}
	if !strings.Contains(m.Logs(), "--max-connections reached") {
		t.Error("refused connection not logged")
	}
	mets := relScrape(t, metricsURL)
	if got := mets.sum("metastore_connections_limit"); got != limit {
		t.Errorf("metastore_connections_limit = %v, want %d", got, limit)
	}
	if got := mets.sum("metastore_connections_current"); got < limit {
		t.Errorf("metastore_connections_current = %v with the client listener full, want >= %d", got, limit)
	}

	// Freeing a slot admits a new connection once the server has seen the
	// close.
	raw[0].Close()
	raw = raw[1:]
	err := framework.WaitFor(5*time.Second, 20*time.Millisecond, func() (bool, error) {
		rc := dial()
		if isOpen(rc, 200*time.Millisecond) {
			raw = append(raw, rc)
			return true, nil
		}
		rc.Close()
		return false, nil
	})
	check(t, "a new connection after one was closed", err)
}

// relTestRateLimit drives two client connections from 127.0.0.1 (one IP,
// one bucket) past --rate-limit-per-client.
func relTestRateLimit(t *testing.T) {
	const (
		rate  = 1
		burst = 3
		tries = 20
	)
	m, metricsURL := relStart(t, framework.Options{ExtraArgs: []string{
		"--rate-limit-per-client", strconv.Itoa(rate), "--rate-limit-burst", strconv.Itoa(burst)}})
	ctx := relCtx(t, 60*time.Second)
	clients := []*clientv3.Client{m.Client(), m.Client()}
	var ok, limited int
	begin := time.Now()
	for i := range tries {
		_, err := clients[i%2].Get(ctx, "rl")
		switch {
		case err == nil:
			ok++
		case errors.Is(err, rpctypes.ErrTooManyRequests):
			limited++
		default:
			t.Fatalf("get %d: %v", i, err)
		}
	}
	elapsed := time.Since(begin)
	t.Logf("%d requests in %v: %d allowed, %d rate limited", tries, elapsed.Round(time.Millisecond), ok, limited)
	// The bucket starts full and refills at rate/s.
	if maxOK := burst + int(elapsed.Seconds()*rate) + 1; ok < burst || ok > maxOK {
		t.Errorf("%d requests allowed, want between %d and %d", ok, burst, maxOK)
	}
	if limited == 0 {
		t.Fatal("no request was rate limited")
	}
	if got := relScrape(t, metricsURL).sum("metastore_rate_limited_total"); got != float64(limited) {
		t.Errorf("metastore_rate_limited_total = %v, want %d", got, limited)
	}
	// The bucket refills: a request succeeds again within a few seconds.
	err := framework.WaitFor(5*time.Second, 200*time.Millisecond, func() (bool, error) {
		_, err := clients[0].Get(ctx, "rl")
		if err != nil && !errors.Is(err, rpctypes.ErrTooManyRequests) {
			return false, err
		}
		return err == nil, nil
	})
	check(t, "request after the bucket refilled", err)
}

// relTestMemoryWatermark sets a 1-byte heap watermark: every write is
// refused with ResourceExhausted while reads and deletes still work.
func relTestMemoryWatermark(t *testing.T) {
	m, metricsURL := relStart(t, framework.Options{ExtraArgs: []string{"--memory-limit-bytes", "1"}})
	relCheckHeapSample(t, metricsURL)
	ctx := relCtx(t, 60*time.Second)
	c := m.Client()

	_, err := c.Put(ctx, "mem/a", "1")
	if relCode(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("put over the memory watermark: %v, want ResourceExhausted about memory", err)
	}
	_, err = c.Txn(ctx).Then(clientv3.OpPut("mem/b", "1")).Commit()
	if relCode(err) != codes.ResourceExhausted {
		t.Errorf("txn with a put over the memory watermark: %v, want ResourceExhausted", err)
	}
	_, err = c.Grant(ctx, 60)
	if relCode(err) != codes.ResourceExhausted {
		t.Errorf("lease grant over the memory watermark: %v, want ResourceExhausted", err)
	}
	if r := mustGet(t, c, ctx, "mem/", clientv3.WithPrefix()); len(r.Kvs) != 0 {
		t.Errorf("refused writes were applied: %v", r.Kvs)
	}
	if _, err := c.Txn(ctx).If(clientv3.Compare(clientv3.Version("mem/a"), "=", 0)).Then(clientv3.OpGet("mem/a")).Commit(); err != nil {
		t.Errorf("read-only txn over the memory watermark: %v", err)
	}
	mustDel(t, c, ctx, "mem/", clientv3.WithPrefix())
	if r := m.Etcdctl("endpoint", "health"); r.Err != nil || !strings.Contains(r.Stdout+r.Stderr, "is healthy") {
		// etcdctl's health check is a read, which the watermark allows.
		t.Errorf("endpoint health over the memory watermark: %v %s", r.Err, r.Stdout)
	}
	mets := relScrape(t, metricsURL)
	if got := mets.sum("metastore_memory_limit_bytes"); got != 1 {
		t.Errorf("metastore_memory_limit_bytes = %v, want 1", got)
	}
	if got := mets.sum("metastore_memory_usage_bytes"); got <= 1 {
		t.Errorf("metastore_memory_usage_bytes = %v, want > 1", got)
	}
	if got := mets.sum("metastore_requests_rejected_total", `reason="memory"`); got < 3 {
		t.Errorf("metastore_requests_rejected_total{memory} = %v, want >= 3", got)
	}
}

// relCheckHeapSample checks that the server's memory watermark has a heap
// sample from its first scrape on: the limiter samples the heap when it is
// built, and its gauge is installed before any listener opens, so a member
// that logged its ready line never reports 0 (a watermark blind until the
// first GC would admit every write).
func relCheckHeapSample(t *testing.T, metricsURL string) {
	t.Helper()
	if u := relScrape(t, metricsURL).sum("metastore_memory_usage_bytes"); u <= 0 {
		t.Fatalf("metastore_memory_usage_bytes = %v right after start, want > 0", u)
	}
}

// ---------------------------------------------------------------------------
// Health

// TestReliabilityHealth checks the gRPC health service with the standard
// grpc_health_probe, etcdctl endpoint health, the Kubernetes-style HTTP
// endpoints on the client and metrics listeners, and that the health
// service turns NOT_SERVING as soon as a graceful shutdown starts.
func TestReliabilityHealth(t *testing.T) {
	relMetastoreOnly(t)
	m, metricsURL := relStart(t, framework.Options{ExtraArgs: []string{"--shutdown-timeout", "10s"}})
	addr := strings.TrimPrefix(m.ClientURL, "http://")

	t.Run("grpc_health_probe", func(t *testing.T) {
		probe := framework.Tool(t, "grpc_health_probe")
		run := func(args ...string) (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, probe, append([]string{"-addr=" + addr, "-connect-timeout=5s", "-rpc-timeout=5s"}, args...)...).CombinedOutput()
			return string(out), err
		}
		out, err := run()
		if err != nil || !strings.Contains(out, "status: SERVING") {
			t.Fatalf("grpc_health_probe: %v: %s", err, out)
		}
		// The probe can fail: an unknown service is reported as an error.
		if out, err := run("-service=no.such.Service"); err == nil {
			t.Fatalf("grpc_health_probe for an unknown service succeeded: %s", out)
		}
	})

	t.Run("etcdctl", func(t *testing.T) {
		out := m.MustEtcdctl("endpoint", "health")
		if !strings.Contains(out, addr+" is healthy") {
			t.Fatalf("etcdctl endpoint health: %q", out)
		}
	})

	t.Run("http", func(t *testing.T) {
		for _, base := range []string{m.ClientURL, metricsURL} {
			for _, tc := range []struct {
				path, want string
				code       int
			}{
				{"/health", `"health":"true"`, 200},
				{"/livez", "ok\n", 200},
				{"/readyz", "ok\n", 200},
				{"/readyz/linearizable_read", "ok\n", 200},
				{"/readyz/serializable_read", "ok\n", 200},
				{"/readyz/data_corruption", "ok\n", 200},
				{"/livez/serializable_read", "ok\n", 200},
				{"/readyz/no_such_check", "", 404},
				{"/readyz?verbose", "[+]data_corruption ok\n[+]linearizable_read ok\n[+]non_learner ok\n[+]serializable_read ok\nreadyz check passed\n", 200},
				{"/livez?verbose", "[+]serializable_read ok\nlivez check passed\n", 200},
				{"/readyz?verbose&exclude=linearizable_read", "[+]linearizable_read excluded: ok", 200},
			} {
				code, body := relHTTPGet(t, base+tc.path)
				if code != tc.code || !strings.Contains(body, tc.want) {
					t.Errorf("GET %s%s: %d %q, want %d containing %q", base, tc.path, code, body, tc.code, tc.want)
				}
			}
		}
		mets := relScrape(t, metricsURL)
		if mets.sum("etcd_server_has_leader") != 1 {
			t.Errorf("etcd_server_has_leader on --listen-metrics-urls = %v, want 1", mets.sum("etcd_server_has_leader"))
		}
	})

	t.Run("NotServingDuringShutdown", func(t *testing.T) {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer wcancel()
		stream, err := healthpb.NewHealthClient(conn).Watch(wctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		first, err := stream.Recv()
		if err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health watch before shutdown: %v, %v; want SERVING", first, err)
		}
		// The watch stream is an in-flight RPC, so the drain phase waits
		// for it: end it once NOT_SERVING arrives, as a load balancer would.
		seen := make(chan healthpb.HealthCheckResponse_ServingStatus, 1)
		go func() {
			defer wcancel()
			for {
				r, err := stream.Recv()
				if err != nil {
					seen <- healthpb.HealthCheckResponse_UNKNOWN
					return
				}
				if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					seen <- r.GetStatus()
					return
				}
			}
		}()
		m.Stop()
		if got := <-seen; got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health watch during shutdown ended with %v, want NOT_SERVING", got)
		}
		if err := m.ExitError(); err != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0", err)
		}
		// The NOT_SERVING update must come from phase 1, before draining.
		events, _ := relShutdownEvents(t, m.Logs())
		if len(events) == 0 || events[0] != "started:stop-accepting" {
			t.Errorf("shutdown events %v", events)
		}
	})
}

// ---------------------------------------------------------------------------
// Metrics

// TestReliabilityMetrics checks that /metrics exposes etcd's metric names
// and metastore's own metastore_* names, and that the write counters move.
func TestReliabilityMetrics(t *testing.T) {
	relMetastoreOnly(t)
	m, metricsURL := relStart(t, framework.Options{})
	relCheckHeapSample(t, metricsURL)
	ctx := relCtx(t, 60*time.Second)
	c := m.Client()
	mustPut(t, c, ctx, "metrics/warm", "x")
	// A request refused by validation, for metastore_validation_errors_total.
	if _, err := c.Put(ctx, "", "v"); !errors.Is(err, rpctypes.ErrEmptyKey) {
		t.Fatalf("put of an empty key: %v, want %v", err, rpctypes.ErrEmptyKey)
	}
	before := relScrape(t, metricsURL)
	required := []string{
		"etcd_server_has_leader", "etcd_server_is_leader",
		"etcd_server_proposals_committed_total", "etcd_server_proposals_applied_total",
		"etcd_server_proposals_pending", "etcd_server_proposals_failed_total",
		"etcd_server_quota_backend_bytes",
		"etcd_mvcc_db_total_size_in_bytes", "etcd_mvcc_put_total",
		"etcd_disk_wal_fsync_duration_seconds", "etcd_disk_backend_commit_duration_seconds",
		"etcd_debugging_mvcc_keys_total", "grpc_server_handled_total",
		"metastore_panic_total", "metastore_connections_current", "metastore_connections_limit",
		"metastore_memory_usage_bytes", "metastore_memory_limit_bytes", "metastore_requests_in_flight",
		"metastore_rate_limited_total", "metastore_validation_errors_total",
	}
	for _, name := range required {
		if !before.has(name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	const puts = 20
	for i := range puts {
		mustPut(t, c, ctx, fmt.Sprintf("metrics/%d", i), "v")
	}
	after := relScrape(t, metricsURL)
	// Each acknowledged put was applied as one entry with one mvcc put
	// before its response; raft committed an entry before handing it to
	// apply, so the commit index raft knows is never below the applied one.
	if d := after.sum("etcd_mvcc_put_total") - before.sum("etcd_mvcc_put_total"); d != puts {
		t.Errorf("etcd_mvcc_put_total rose by %v after %d puts, want %d", d, puts, puts)
	}
	appliedBefore, appliedAfter := before.sum("etcd_server_proposals_applied_total"), after.sum("etcd_server_proposals_applied_total")
	if d := appliedAfter - appliedBefore; d < puts {
		t.Errorf("etcd_server_proposals_applied_total rose by %v after %d puts, want >= %d", d, puts, puts)
	}
	for _, sc := range []struct {
		name string
		m    relMetrics
	}{{"before", before}, {"after", after}} {
		committed, applied := sc.m.sum("etcd_server_proposals_committed_total"), sc.m.sum("etcd_server_proposals_applied_total")
		if committed < applied || applied <= 0 {
			t.Errorf("%s the puts: etcd_server_proposals_committed_total = %v, applied = %v; want committed >= applied > 0", sc.name, committed, applied)
		}
	}
	if d := after.sum("grpc_server_handled_total", `grpc_method="Put"`, `grpc_code="OK"`) -
		before.sum("grpc_server_handled_total", `grpc_method="Put"`, `grpc_code="OK"`); d != puts {
		t.Errorf("grpc_server_handled_total{Put,OK} rose by %v, want %d", d, puts)
	}
	for name, want := range map[string]float64{
		"etcd_server_has_leader":          1,
		"etcd_server_is_leader":           1,
		"etcd_debugging_mvcc_keys_total":  puts + 1,
		"metastore_connections_limit":     10000,
		"metastore_memory_limit_bytes":    2 << 30,
		"etcd_server_quota_backend_bytes": 2 << 30,
		"etcd_server_proposals_pending":   0,
	} {
		if got := after.sum(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, name := range []string{"metastore_connections_current", "etcd_mvcc_db_total_size_in_bytes", "etcd_disk_wal_fsync_duration_seconds_count", "etcd_disk_backend_commit_duration_seconds_count"} {
		if got := after.sum(name); got <= 0 {
			t.Errorf("%s = %v, want > 0", name, got)
		}
	}
}

// ---------------------------------------------------------------------------
// Data validation: corrupted storage

const relWALBlock = 32 << 10 // Pebble's WAL block size

// relNewest returns the path of the highest-numbered file with the suffix
// in dir (Pebble numbers files in creation order).
func relNewest(t *testing.T, dir, suffix string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), suffix) {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatalf("no *%s file in %s", suffix, dir)
	}
	sort.Strings(names) // zero-padded numbers
	return filepath.Join(dir, names[len(names)-1])
}

// relFlip inverts 16 bytes of path at offset.
func relFlip(t *testing.T, path string, offset int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 16)
	if _, err := f.ReadAt(b, offset); err != nil {
		t.Fatalf("read %s@%d: %v", path, offset, err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if _, err := f.WriteAt(b, offset); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func relSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// relCopyDir replaces dst with a copy of src.
func relCopyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// relStartOutcome is what a start on a possibly corrupted data dir led to.
type relStartOutcome struct {
	exited  bool
	exitErr error
	output  string
	rev     int64 // revision served, if it served
	keys    int64 // keys under the test prefix served, if it served
}

// relStartCorrupted runs the member's binary with its flags on its (stopped)
// data dir and waits until it exits or serves; if it serves, it reads what
// it serves and kills it.
func relStartCorrupted(t *testing.T, m *framework.Member, prefix string) relStartOutcome {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "corrupt.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(framework.ServerBinary(t), m.Args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	readLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	var out relStartOutcome
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			out.exited, out.exitErr, out.output = true, err, readLog()
			return out
		case <-deadline:
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("member on a corrupted data dir neither served nor exited in 30s:\n%s", readLog())
		case <-tick.C:
			if !strings.Contains(readLog(), framework.ReadyLine) {
				continue
			}
		}
		break
	}
	// It serves: find out what.
	func() {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Errorf("client: %v", err)
			return
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Logf("member on a corrupted data dir serves but a range fails: %v", err)
			return
		}
		out.rev, out.keys = r.Header.Revision, r.Count
	}()
	_ = cmd.Process.Kill()
	<-exited
	out.output = readLog()
	return out
}

// relRefused checks that a start on corrupted data failed with an error
// naming the problem.
func relRefused(t *testing.T, o relStartOutcome, what string) {
	t.Helper()
	if !o.exited {
		t.Fatalf("member started on a data dir with a corrupted %s (served revision %d, %d keys)", what, o.rev, o.keys)
	}
	if o.exitErr == nil {
		t.Fatalf("member exited 0 on a corrupted %s:\n%s", what, o.output)
	}
	if !regexp.MustCompile(`(?i)corrupt|checksum|invalid chunk`).MatchString(o.output) {
		t.Fatalf("member refused a corrupted %s without naming the problem:\n%s", what, o.output)
	}
	for _, line := range strings.Split(o.output, "\n") {
		if strings.Contains(line, `"level":"fatal"`) || strings.Contains(line, `"level":"error"`) {
			t.Logf("refused (%v): %.300s", o.exitErr, line)
			break
		}
	}
}

// TestReliabilityCorruptionDetected writes data, stops the member cleanly,
// flips bytes in its Pebble files and restarts it: it must refuse to start
// with an error naming the corruption rather than serve wrong data.
//
// A corrupted table (.sst) is refused by Pebble, and so is a corrupted WAL
// record followed by at least one more block of synced records. Pebble
// cannot tell a corrupted record near the end of the newest WAL from a
// write torn by a crash and drops the log from there on without an error;
// the engine then finds that it recovered less than had been synced (the
// synced sequence number it keeps outside the WAL, internal/storage/pebble
// syncmark.go) and refuses to start (WALLastBlock).
func TestReliabilityCorruptionDetected(t *testing.T) {
	relMetastoreOnly(t)
	const (
		prefix  = "cv/"
		writers = 8
		minWAL  = 3 * relWALBlock
	)
	m := framework.Start(t, framework.Options{})
	ctx := relCtx(t, 60*time.Second)
	c := m.Client()
	pebbleDir := filepath.Join(m.DataDir, "member", "pebble")

	// Many small synced records, as etcd traffic makes, until the newest
	// WAL spans a few blocks (Pebble may start a new WAL at any time).
	// Values are arbitrary bytes, not text.
	var (
		wg      sync.WaitGroup
		stop    atomic.Bool
		written atomic.Int64
		lastRev atomic.Int64
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			val := []byte{0xff, 0x00, 0xfe, byte(w)}
			for i := 0; i < 4000 && !stop.Load(); i++ {
				r, err := c.Put(ctx, fmt.Sprintf("%s%d/%05d", prefix, w, i), string(append(val, make([]byte, 200)...)))
				if err != nil {
					t.Errorf("put: %v", err)
					return
				}
				written.Add(1)
				for {
					cur := lastRev.Load()
					if r.Header.Revision <= cur || lastRev.CompareAndSwap(cur, r.Header.Revision) {
						break
					}
				}
				if i%64 == 63 && relSize(t, relNewest(t, pebbleDir, ".log")) >= minWAL {
					stop.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	keys, rev := written.Load(), lastRev.Load()
	// A crash, not a clean stop: a clean stop flushes everything into
	// checksummed tables and leaves an empty WAL, so only after a crash
	// does the WAL hold acknowledged writes for corruption to hit.
	m.Kill9()
	if size := relSize(t, relNewest(t, pebbleDir, ".log")); size < minWAL {
		t.Fatalf("newest WAL has %d bytes after %d puts; the test needs %d", size, keys, minWAL)
	}
	pristine := filepath.Join(t.TempDir(), "pristine")
	relCopyDir(t, m.DataDir, pristine)

	t.Run("WALEarlyBlock", func(t *testing.T) {
		relFlip(t, relNewest(t, pebbleDir, ".log"), relWALBlock/3)
		relRefused(t, relStartCorrupted(t, m, prefix), "WAL record")
	})

	t.Run("WALLastBlock", func(t *testing.T) {
		relCopyDir(t, pristine, m.DataDir)
		wal := relNewest(t, pebbleDir, ".log")
		size := relSize(t, wal)
		lastBlock := (size - 1) / relWALBlock * relWALBlock
		relFlip(t, wal, lastBlock+(size-lastBlock)/3)
		o := relStartCorrupted(t, m, prefix)
		switch {
		case o.exited && o.exitErr != nil:
			relRefused(t, o, "WAL record")
		case o.exited:
			t.Fatalf("member exited 0 on a corrupted WAL:\n%s", o.output)
		case o.rev == rev && o.keys == keys:
			t.Logf("the corruption hit no live record: all %d keys served at revision %d", keys, rev)
		default:
			t.Fatalf("a corrupted record in the last block of the newest WAL was dropped silently: "+
				"the member served revision %d with %d keys after %d puts were acknowledged up to revision %d", o.rev, o.keys, keys, rev)
		}
	})

	// A pristine copy serves every write: the refusals above were the
	// corruption's doing. Pebble flushes the replayed WAL into a table on
	// open, so after this restart the data lives in an .sst file.
	relCopyDir(t, pristine, m.DataDir)
	m.StartAgain()
	if r := mustGet(t, m.Client(), ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); r.Count != keys || r.Header.Revision < rev {
		t.Fatalf("restored data dir serves %d keys at revision %d, want %d at >= %d", r.Count, r.Header.Revision, keys, rev)
	}
	m.Stop()

	t.Run("SSTMiddle", func(t *testing.T) {
		sst := relNewest(t, pebbleDir, ".sst")
		relFlip(t, sst, relSize(t, sst)/2)
		relRefused(t, relStartCorrupted(t, m, prefix), "table (.sst)")
	})
}

// ---------------------------------------------------------------------------
// NOSPACE

// TestReliabilityNoSpace fills a small --quota-backend-bytes: writes fail
// with etcd's "database space exceeded" and the NOSPACE alarm is raised;
// reads and deletes still work; disarming alone does not help while the
// data is over the quota; after deleting, compacting and disarming, writes
// work again.
func TestReliabilityNoSpace(t *testing.T) {
	relMetastoreOnly(t)
	const quota = 256 << 10
	m := framework.Start(t, framework.Options{ExtraArgs: []string{"--quota-backend-bytes", strconv.Itoa(quota)}})
	ctx := relCtx(t, 60*time.Second)
	c := m.Client()
	val := strings.Repeat("q", 4<<10)
	written := 0
	for ; written < 200; written++ {
		_, err := c.Put(ctx, fmt.Sprintf("ns/%04d", written), val)
		if err != nil {
			requireErr(t, err, rpctypes.ErrNoSpace)
			break
		}
	}
	if written == 200 || written < quota/len(val)/2 {
		t.Fatalf("%d puts of %d bytes before NOSPACE with a %d-byte quota", written, len(val), quota)
	}
	t.Logf("NOSPACE after %d puts", written)
	if out := m.MustEtcdctl("alarm", "list"); !strings.Contains(out, "alarm:NOSPACE") {
		t.Fatalf("etcdctl alarm list: %q, want NOSPACE", out)
	}
	_, err := c.Put(ctx, "ns/small", "x")
	requireErr(t, err, rpctypes.ErrNoSpace)
	if code, body := relHTTPGet(t, m.ClientURL+"/health"); code != http.StatusServiceUnavailable || !strings.Contains(body, "NOSPACE") {
		t.Errorf("/health under NOSPACE: %d %s", code, body)
	}
	if code, _ := relHTTPGet(t, m.ClientURL+"/health?exclude=NOSPACE"); code != http.StatusOK {
		t.Errorf("/health?exclude=NOSPACE: %d", code)
	}

	// Reads and deletes still work.
	if r := mustGet(t, c, ctx, "ns/0000"); len(r.Kvs) != 1 || string(r.Kvs[0].Value) != val {
		t.Fatalf("read under NOSPACE: %v", r.Kvs)
	}
	if r := mustGet(t, c, ctx, "ns/", clientv3.WithPrefix(), clientv3.WithCountOnly()); r.Count != int64(written) {
		t.Fatalf("%d keys under NOSPACE, want %d", r.Count, written)
	}

	// Disarming while still over the quota: the next write raises it again.
	m.MustEtcdctl("alarm", "disarm")
	_, err = c.Put(ctx, "ns/again", val)
	requireErr(t, err, rpctypes.ErrNoSpace)
	if out := m.MustEtcdctl("alarm", "list"); !strings.Contains(out, "alarm:NOSPACE") {
		t.Fatalf("alarm list after a write over the quota: %q, want NOSPACE again", out)
	}

	del := mustDel(t, c, ctx, "ns/", clientv3.WithPrefix())
	if del.Deleted != int64(written) {
		t.Fatalf("deleted %d keys under NOSPACE, want %d", del.Deleted, written)
	}
	if _, err := c.Compact(ctx, del.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact under NOSPACE: %v", err)
	}
	m.MustEtcdctl("alarm", "disarm")
	if out := m.MustEtcdctl("alarm", "list"); strings.TrimSpace(out) != "" {
		t.Fatalf("alarm list after disarm: %q", out)
	}
	mustPut(t, c, ctx, "ns/after", val)
	if code, _ := relHTTPGet(t, m.ClientURL+"/health"); code != http.StatusOK {
		t.Errorf("/health after disarm: %d", code)
	}
}
