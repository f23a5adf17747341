package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

// The size mode (issue 11): Kubernetes-shaped data loaded to N GiB of live
// keys and values, then, on the same member: put/range latencies, latencies
// while a compaction of all but the latest revisions runs, disk use and peak
// RSS, restart to ready after SIGTERM and after kill -9 (RSS right after),
// and how long a new member takes to join and hold the data.

type sizeSettings struct {
	gib         float64
	updateFrac  float64 // share of the keys written again
	updateRevs  int     // revisions each of those keys gets
	loadClients int
	opTime      time.Duration // bound of each latency sample
	phases      string        // comma-separated phases run after the load; empty: all
	joinArgs    string        // extra flags of the joining member
	// noJoin skips the last phase: a joining member doubles the disk the
	// run needs, which the largest sizes may not have.
	noJoin bool
	// values: "random" (incompressible bytes) or "objects" (shaped like
	// Kubernetes objects, objects.go).
	values string
}

// kinds are the resource prefixes and their share of the keys (out of 20).
var kinds = []struct {
	name  string
	share int
}{{"pods", 8}, {"events", 4}, {"configmaps", 3}, {"secrets", 3}, {"deployments", 1}, {"services", 1}}

// kindOf maps key i to its kind: shares of every 20 consecutive keys.
func kindOf(i int) string {
	r := i % 20
	for _, k := range kinds {
		if r < k.share {
			return k.name
		}
		r -= k.share
	}
	return kinds[0].name
}

func sizeKey(i int) string {
	k := kindOf(i)
	return fmt.Sprintf("/registry/%s/ns-%03d/%s-%08d", k, (i/20)%100, k, i)
}

// values hands out values of 1-10 KiB cut at random offsets of a pool of
// random bytes: no two values alike and nothing a block compressor can
// shrink, as with Kubernetes' protobuf-encoded objects.
type values struct {
	pool []byte
}

func newValues() *values {
	r := rand.New(rand.NewPCG(1, 2))
	pool := make([]byte, 64<<20)
	for i := 0; i+8 <= len(pool); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			pool[i+j] = byte(v >> (8 * j))
		}
	}
	return &values{pool: pool}
}

func (v *values) get(r *rand.Rand, _ int, size int) string {
	off := r.IntN(len(v.pool) - size)
	return string(v.pool[off : off+size])
}

func valueSize(r *rand.Rand) int { return 1024 + r.IntN(9*1024+1) }

// isNoSpace reports the quota error (both servers send etcd's text).
func isNoSpace(err error) bool {
	return err != nil && strings.Contains(err.Error(), "database space exceeded")
}

type sizeRun struct {
	z     sizeSettings
	srv   *server
	vals  valueSource
	sizes []int // value size of key i, 0 once deleted
	live  int64 // bytes of live keys and values
	// retried counts requests of the load that failed other than by the
	// quota and were sent again (reported, then reset, after each phase).
	retried atomic.Int64
}

// retry runs f up to five times while it fails other than by the quota
// (a request timed out under the load, say), as a Kubernetes client would;
// the writes are plain puts, so sending one again is harmless.
func (r *sizeRun) retry(f func() error) error {
	var err error
	for range 5 {
		if err = f(); err == nil || isNoSpace(err) {
			return err
		}
		r.retried.Add(1)
		r.logf("request failed, sending it again: %v", err)
	}
	return err
}

func (r *sizeRun) logf(format string, a ...any) {
	fmt.Printf("%-9s %.2fGiB | %s\n", r.srv.name, r.z.gib, fmt.Sprintf(format, a...))
}

func runSize(s settings, z sizeSettings) error {
	var vals valueSource = newValues()
	if z.values == "objects" {
		vals = &objects{rand: newValues()}
	}
	return forEachServer(s, "size", func(srv server) error {
		r := &sizeRun{z: z, srv: &srv, vals: vals}
		defer func() {
			if r.srv.proc.Running() {
				r.srv.proc.Stop(2 * time.Minute)
			}
		}()
		return r.run()
	})
}

func (r *sizeRun) run() error {
	if err := r.load(); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	// A later phase that fails is reported and the next one runs: one
	// failed measurement should not cost the others of a long run.
	for _, ph := range []struct {
		name string
		f    func() error
	}{
		{"update", r.update},
		{"latencies", func() error { return r.latencies("idle") }},
		{"compaction", r.compaction},
		{"disk and peak RSS", r.usage},
		{"restart", r.restarts},
		{"join", r.join},
	} {
		if r.z.phases != "" && !slices.Contains(strings.Split(r.z.phases, ","), ph.name) {
			continue
		}
		if ph.name == "join" && r.z.noJoin {
			r.logf("join: skipped (-no-join)")
			continue
		}
		if err := ph.f(); err != nil {
			r.logf("%s FAILED: %v", ph.name, err)
			if !r.srv.proc.Running() {
				return fmt.Errorf("%s: the server is down: %w", ph.name, err)
			}
		}
	}
	return nil
}

func (r *sizeRun) usage() error {
	peak, err := hwm(r.srv.pid())
	if err != nil {
		return err
	}
	data := filepath.Join(r.srv.dir, "data")
	r.logf("disk %s (%s), peak RSS %d MiB (VmHWM since start)", mib(diskUse(data)), diskKinds(data), peak>>10)
	return nil
}

// diskKinds breaks the disk use under dir down by kind of file, largest
// first: Pebble's tables (.sst), blob files (.blob) and WAL (.log), bbolt's
// file (db) and etcd's WAL and snapshots (.wal, .snap); anything else is
// "other".
func diskKinds(dir string) string {
	by := map[string]int64{}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		kind := "other"
		switch ext := filepath.Ext(path); {
		case ext == ".sst", ext == ".blob", ext == ".log", ext == ".wal", ext == ".snap":
			kind = ext[1:]
		case d.Name() == "db":
			kind = "db"
		}
		by[kind] += diskUse(path)
		return nil
	})
	kinds := make([]string, 0, len(by))
	for k := range by {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		return by[kinds[i]] > by[kinds[j]] || by[kinds[i]] == by[kinds[j]] && kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = k + " " + mib(by[k])
	}
	return strings.Join(parts, ", ")
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func mbps(b int64, d time.Duration) float64 { return float64(b) / 1e6 / d.Seconds() }

// load writes keys until their keys and values reach the target, in
// transactions of at most 100 puts and 1 MiB from loadClients clients. A
// NOSPACE stops it: the keys of the transactions that succeeded stay.
func (r *sizeRun) load() error {
	target := int64(r.z.gib * (1 << 30))
	rng := rand.New(rand.NewPCG(3, 4))
	type batch struct{ lo, hi int }
	var batches []batch
	var total int64
	for i := 0; total < target; {
		lo := i
		var bb int64
		for ; i-lo < 100 && bb < 900<<10 && total < target; i++ {
			sz := valueSize(rng)
			r.sizes = append(r.sizes, sz)
			n := int64(len(sizeKey(i)) + sz)
			bb += n
			total += n
		}
		batches = append(batches, batch{lo, i})
	}
	ok := make([]bool, len(batches))
	var stopped atomic.Bool
	var firstErr error
	var errOnce sync.Once
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range r.z.loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wr := rand.New(rand.NewPCG(5, uint64(w)))
			for bi := range next {
				b := batches[bi]
				ops := make([]clientv3.Op, 0, b.hi-b.lo)
				for i := b.lo; i < b.hi; i++ {
					ops = append(ops, clientv3.OpPut(sizeKey(i), r.vals.get(wr, i, r.sizes[i])))
				}
				err := r.retry(func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					_, err := r.srv.c.Txn(ctx).Then(ops...).Commit()
					return err
				})
				if err != nil {
					stopped.Store(true)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				ok[bi] = true
			}
		}()
	}
	for bi := range batches {
		if stopped.Load() {
			break
		}
		next <- bi
	}
	close(next)
	wg.Wait()
	d := time.Since(start)
	for bi, b := range batches {
		for i := b.lo; i < b.hi; i++ {
			if !ok[bi] {
				r.sizes[i] = 0
				continue
			}
			r.live += int64(len(sizeKey(i)) + r.sizes[i])
		}
	}
	r.logf("load: %d keys, %s of keys and values in %.1fs: %.1f MB/s (%d clients, transactions of <=100 puts); %d requests failed and were sent again",
		r.keys(), mib(r.live), d.Seconds(), mbps(r.live, d), r.z.loadClients, r.retried.Swap(0))
	if firstErr == nil {
		return nil
	}
	if !isNoSpace(firstErr) {
		return firstErr
	}
	r.logf("load stopped by the quota (%v) at %s live of the %.2f GiB target", firstErr, mib(r.live), r.z.gib)
	return r.freeSpace()
}

func (r *sizeRun) keys() int {
	n := 0
	for _, sz := range r.sizes {
		if sz > 0 {
			n++
		}
	}
	return n
}

// freeSpace is what an operator does after NOSPACE: delete some data (here
// the last 5% of the keys), compact, defragment and disarm the alarm.
func (r *sizeRun) freeSpace() error {
	ctx := context.Background()
	var ks []int
	n := r.keys() / 20
	for i := len(r.sizes) - 1; i >= 0 && len(ks) < n; i-- {
		if r.sizes[i] > 0 {
			ks = append(ks, i)
		}
	}
	for lo := 0; lo < len(ks); lo += 100 {
		var ops []clientv3.Op
		for _, i := range ks[lo:min(lo+100, len(ks))] {
			ops = append(ops, clientv3.OpDelete(sizeKey(i)))
		}
		if _, err := r.srv.c.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("delete after NOSPACE: %w", err)
		}
	}
	for _, i := range ks {
		r.live -= int64(len(sizeKey(i)) + r.sizes[i])
		r.sizes[i] = 0
	}
	resp, err := r.srv.c.Get(ctx, "health")
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := r.srv.c.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("compact after NOSPACE: %w", err)
	}
	tc := time.Since(t0)
	t0 = time.Now()
	dctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	if _, err := r.srv.c.Defragment(dctx, r.srv.url); err != nil {
		return fmt.Errorf("defragment after NOSPACE: %w", err)
	}
	td := time.Since(t0)
	if _, err := r.srv.c.AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil {
		return fmt.Errorf("disarm: %w", err)
	}
	r.logf("freed space: deleted %d keys, compaction %.1fs, defragmentation %.1fs, alarm disarmed; %d keys, %s live",
		len(ks), tc.Seconds(), td.Seconds(), r.keys(), mib(r.live))
	return nil
}

// update writes updateRevs new values, one put per request as
// kube-apiserver does, to updateFrac of the keys: the history the
// compaction then removes.
func (r *sizeRun) update() error {
	var ks []int
	step := max(1, int(1/max(r.z.updateFrac, 1e-9)))
	for i := 0; i < len(r.sizes); i += step {
		if r.sizes[i] > 0 {
			ks = append(ks, i)
		}
	}
	if len(ks) == 0 || r.z.updateRevs == 0 {
		return nil
	}
	var next atomic.Int64
	total := len(ks) * r.z.updateRevs
	var wg sync.WaitGroup
	var written atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var stopped atomic.Bool
	start := time.Now()
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wr := rand.New(rand.NewPCG(6, uint64(w)))
			for !stopped.Load() {
				j := int(next.Add(1)) - 1
				if j >= total {
					return
				}
				i := ks[j%len(ks)]
				v := r.vals.get(wr, i, r.sizes[i])
				err := r.retry(func() error {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					_, err := r.srv.c.Put(ctx, sizeKey(i), v)
					return err
				})
				if err != nil {
					stopped.Store(true)
					errOnce.Do(func() { firstErr = err })
					return
				}
				written.Add(int64(len(v)))
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	r.logf("update: %d puts of %d keys (%s) in %.1fs: %.0f puts/s, %.1f MB/s (16 clients, one put each); %d requests failed and were sent again",
		min(int(next.Load()), total), len(ks), mib(written.Load()), d.Seconds(), float64(min(int(next.Load()), total))/d.Seconds(), mbps(written.Load(), d), r.retried.Swap(0))
	if firstErr == nil {
		return nil
	}
	if !isNoSpace(firstErr) {
		return firstErr
	}
	r.logf("updates stopped by the quota: %v", firstErr)
	return r.freeSpace()
}

// randKey returns a live key index.
func (r *sizeRun) randKey(rng *rand.Rand) int {
	for {
		if i := rng.IntN(len(r.sizes)); r.sizes[i] > 0 {
			return i
		}
	}
}

// sample runs op from clients goroutines until n ops or d passed and
// returns the latencies of those that succeeded and how many failed.
func sample(clients, n int, d time.Duration, op func(rng *rand.Rand) error) ([]time.Duration, int, string) {
	var mu sync.Mutex
	var lat []time.Duration
	var fails int
	var firstErr string
	var count atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(7, uint64(w)))
			for count.Add(1) <= int64(n) && time.Now().Before(deadline) {
				t0 := time.Now()
				err := op(rng)
				el := time.Since(t0)
				mu.Lock()
				if err != nil {
					if fails++; firstErr == "" {
						firstErr = err.Error()
					}
				} else {
					lat = append(lat, el)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, fails, firstErr
}

func failures(n int, first string) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d FAILED (first: %s)", n, first)
}

func (r *sizeRun) putOp(rng *rand.Rand) error {
	i := r.randKey(rng)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := r.srv.c.Put(ctx, sizeKey(i), r.vals.get(rng, i, r.sizes[i]))
	return err
}

func (r *sizeRun) getOp(rng *rand.Rand) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := r.srv.c.Get(ctx, sizeKey(r.randKey(rng)))
	return err
}

func (r *sizeRun) pageOp(rng *rand.Rand) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := r.srv.c.Get(ctx, fmt.Sprintf("/registry/pods/ns-%03d/", rng.IntN(100)), clientv3.WithPrefix(), clientv3.WithLimit(500))
	return err
}

func (r *sizeRun) countOp(*rand.Rand) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err := r.srv.c.Get(ctx, "/registry/pods/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	return err
}

func p5099(lat []time.Duration) string {
	return fmt.Sprintf("p50 %.2f p99 %.2f ms (n=%d)", ms(pct(lat, 0.5)), ms(pct(lat, 0.99)), len(lat))
}

// latencies measures single puts and gets (4 clients), 500-key pages of one
// namespace's pods and counts of every pod (1 client).
func (r *sizeRun) latencies(label string) error {
	for _, m := range []struct {
		name       string
		clients, n int
		op         func(*rand.Rand) error
	}{
		{"put", 4, 4000, r.putOp},
		{"get", 4, 4000, r.getOp},
		{"page of 500 pods", 1, 300, r.pageOp},
		{"count of /registry/pods/", 1, 30, r.countOp},
	} {
		u0, uerr := readUsage(r.srv.pid())
		lat, fails, first := sample(m.clients, m.n, r.z.opTime, m.op)
		u1, err := readUsage(r.srv.pid())
		use := u1.perRequest(u0, len(lat)+fails)
		if err = errors.Join(uerr, err); err != nil {
			use = fmt.Sprintf("server usage not read: %v", err)
		}
		r.logf("%s %s: %s%s; %s", label, m.name, p5099(lat), failures(fails, first), use)
	}
	return nil
}

// mixedResult is what mixed measured: latencies of the requests that
// succeeded, and the failures.
type mixedResult struct {
	puts, gets []time.Duration
	fails      int
	first      string
}

// mixed runs puts and gets from 2 clients each until stop is closed.
func (r *sizeRun) mixed(stop <-chan struct{}) mixedResult {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var m mixedResult
	run := func(op func(*rand.Rand) error, out *[]time.Duration, seed uint64) {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(8, seed))
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			e := op(rng)
			mu.Lock()
			if e != nil {
				if m.fails++; m.first == "" {
					m.first = e.Error()
				}
			} else {
				*out = append(*out, time.Since(t0))
			}
			mu.Unlock()
		}
	}
	for w := range 2 {
		wg.Add(2)
		go run(r.putOp, &m.puts, uint64(w))
		go run(r.getOp, &m.gets, uint64(10+w))
	}
	wg.Wait()
	return m
}

// compaction compacts every revision but the latest (with physical: the
// call returns once the data is gone) while puts and gets run, and compares
// their p99 with the same load just before.
func (r *sizeRun) compaction() error {
	ctx := context.Background()
	stop := make(chan struct{})
	time.AfterFunc(r.z.opTime, func() { close(stop) })
	u0, uerr := readUsage(r.srv.pid())
	base := r.mixed(stop)
	bp, bg := base.puts, base.gets
	resp, err := r.srv.c.Get(ctx, "health")
	if err != nil {
		return err
	}
	rev := resp.Header.Revision
	stop = make(chan struct{})
	done := make(chan mixedResult, 1)
	go func() { done <- r.mixed(stop) }()
	u1, err := readUsage(r.srv.pid())
	uerr = errors.Join(uerr, err)
	t0 := time.Now()
	cctx, cancel := context.WithTimeout(ctx, time.Hour)
	_, cerr := r.srv.c.Compact(cctx, rev, clientv3.WithCompactPhysical())
	cancel()
	cd := time.Since(t0)
	u2, err := readUsage(r.srv.pid())
	uerr = errors.Join(uerr, err)
	close(stop)
	m := <-done
	r.logf("compaction to revision %d took %.2fs; put p99 %.2f ms without / %.2f ms during (%.2fx, n=%d), get p99 %.2f / %.2f ms (%.2fx, n=%d); failed requests: %d before, %d during%s",
		rev, cd.Seconds(), ms(pct(bp, 0.99)), ms(pct(m.puts, 0.99)), ratio(pct(m.puts, 0.99), pct(bp, 0.99)), len(m.puts),
		ms(pct(bg, 0.99)), ms(pct(m.gets, 0.99)), ratio(pct(m.gets, 0.99), pct(bg, 0.99)), len(m.gets),
		base.fails, m.fails, failures(base.fails+m.fails, base.first+m.first))
	// The same load once more right after: work the server deferred past
	// the compaction (its storage engine's own compactions of the
	// tombstones) shows here rather than vanishing from the figures.
	stop = make(chan struct{})
	time.AfterFunc(r.z.opTime, func() { close(stop) })
	a := r.mixed(stop)
	u3, err := readUsage(r.srv.pid())
	uerr = errors.Join(uerr, err)
	r.logf("after the compaction: put p99 %.2f ms (%.2fx without, n=%d), get p99 %.2f ms (%.2fx, n=%d); failed requests: %d%s",
		ms(pct(a.puts, 0.99)), ratio(pct(a.puts, 0.99), pct(bp, 0.99)), len(a.puts),
		ms(pct(a.gets, 0.99)), ratio(pct(a.gets, 0.99), pct(bg, 0.99)), len(a.gets),
		a.fails, failures(a.fails, a.first))
	if uerr != nil {
		r.logf("compaction: server usage not read: %v", uerr)
	} else {
		r.logf("compaction: server %s without, %s during, %s after", u1.since(u0), u2.since(u1), u3.since(u2))
	}
	return cerr
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(max(b, 1)) }

// rss reads VmRSS (KiB) of pid.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// restarts stops the member with SIGTERM, then with SIGKILL, and times each
// start until a linearizable read succeeds.
func (r *sizeRun) restarts() error {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t0 := time.Now()
		r.srv.c.Close()
		r.srv.proc.Signal(sig)
		if _, killed := r.srv.proc.Wait(5 * time.Minute); killed {
			return fmt.Errorf("still running 5 minutes after %v", sig)
		}
		stopT := time.Since(t0)
		d, err := r.srv.start()
		if err != nil {
			return err
		}
		r.logf("restart after %v: stopped in %.2fs, ready in %.2fs, RSS right after %d MiB",
			sig, stopT.Seconds(), d.Seconds(), rss(r.srv.pid())>>10)
	}
	return nil
}

// join adds a member, starts it on an empty data dir and waits until it
// serves the latest revision (it gets the data by a Raft snapshot). It is
// the last step: the cluster is left with two members.
func (r *sizeRun) join() error {
	ctx := context.Background()
	resp, err := r.srv.c.Get(ctx, "health")
	if err != nil {
		return err
	}
	rev := resp.Header.Revision
	curl, purl, err := urls()
	if err != nil {
		return err
	}
	if _, err := r.srv.c.MemberAdd(ctx, []string{purl}); err != nil {
		return err
	}
	dir := filepath.Join(r.srv.dir, "join")
	defer os.RemoveAll(filepath.Join(dir, "data")) // the log stays

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	args := []string{
		"--name", "s1", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "s0=" + r.srv.peerURL() + ",s1=" + purl, "--initial-cluster-state", "existing",
	}
	args = append(args, quotaArgs(r.srv.args)...)
	args = append(args, strings.Fields(r.z.joinArgs)...)
	t0 := time.Now()
	p, err := framework.StartProcess(framework.ProcessOptions{Bin: r.srv.bin, Args: args, LogPath: filepath.Join(dir, "server.log")})
	if err != nil {
		return err
	}
	defer p.Stop(2 * time.Minute)
	c, err := newClient(curl)
	if err != nil {
		return err
	}
	defer c.Close()
	var d time.Duration
	err = framework.WaitFor(2*time.Hour, 50*time.Millisecond, func() (bool, error) {
		if !p.Running() {
			return false, fmt.Errorf("new member exited (log %s)", filepath.Join(dir, "server.log"))
		}
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		g, err := c.Get(gctx, "health", clientv3.WithSerializable())
		if err != nil || g.Header.Revision < rev {
			return false, nil
		}
		d = time.Since(t0)
		return true, nil
	})
	if err != nil {
		return err
	}
	cnt, err := c.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable())
	if err != nil {
		return err
	}
	r.logf("join: new member serves revision %d with %d keys %.2fs after its start: %.1f MB/s of live data; its disk %s, its VmHWM %d MiB",
		rev, cnt.Count, d.Seconds(), mbps(r.live, d), mib(diskUse(filepath.Join(dir, "data"))), must(hwm(p.Pid()))>>10)
	// The new member is not removed: etcd refuses to remove a member that
	// became active only now ("unhealthy cluster"); both are stopped and
	// their data deleted next.
	return nil
}

func must(v int64, err error) int64 {
	if err != nil {
		return -1
	}
	return v
}

// peerURL is the member's --initial-advertise-peer-urls.
func (s server) peerURL() string {
	for i, a := range s.args {
		if a == "--initial-advertise-peer-urls" && i+1 < len(s.args) {
			return s.args[i+1]
		}
	}
	return ""
}

// quotaArgs returns the last --quota-backend-bytes flag of args.
func quotaArgs(args []string) []string {
	var q []string
	for i, a := range args {
		if a == "--quota-backend-bytes" && i+1 < len(args) {
			q = []string{a, args[i+1]}
		}
	}
	return q
}

// diskUse is the space the files under dir take (allocated blocks).
func diskUse(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}
