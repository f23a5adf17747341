package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/tests/framework"
)

type settings struct {
	keys, value, lists, rounds int
	listTimeout                time.Duration
	metastore, etcd            string
	metastoreArgs, etcdArgs    string
	workDir                    string
}

// result is one server's measurement.
type result struct {
	server         string
	loadTime       time.Duration
	hwmAfterLoad   int64 // KiB
	hwmDuringLists int64 // KiB
	listsOK        int
	listErrs       []string
	listDur        []time.Duration
	puts           []time.Duration
	putErrs        int
}

func main() {
	var s settings
	var w watchSettings
	var z sizeSettings
	mode := flag.String("mode", "lists", "lists: concurrent unpaginated LISTs; watch: put latency with and without a stalled watch stream among many watchers; size: load to -size-gib and measure latencies, compaction, restart, join")
	flag.Float64Var(&z.gib, "size-gib", 1, "size mode: GiB of live keys and values to load")
	flag.Float64Var(&z.updateFrac, "update-frac", 0.1, "size mode: share of the keys written again after the load")
	flag.IntVar(&z.updateRevs, "update-revs", 2, "size mode: new revisions of each of those keys")
	flag.IntVar(&z.loadClients, "load-clients", 8, "size mode: concurrent loading clients")
	flag.BoolVar(&z.noJoin, "no-join", false, "size mode: skip the joining member (it needs as much disk again)")
	flag.DurationVar(&z.opTime, "op-time", 20*time.Second, "size mode: bound of each latency sample")
	flag.StringVar(&z.joinArgs, "join-args", "", "size mode: extra flags for the joining member, space separated (e.g. --enable-pprof to profile its catch-up)")
	flag.StringVar(&z.phases, "size-phases", "", "size mode: comma-separated phases to run after the load (update, latencies, compaction, disk and peak RSS, restart, join); empty: all")
	flag.StringVar(&z.values, "values", "random", "size mode: random (incompressible bytes) or objects (shaped like Kubernetes objects: protobuf framing, real-looking strings, random IDs; what Snappy gets from them is in objects_test.go)")
	portBase := flag.Int("port-base", 46000, "first 127.0.0.1 port tried for the servers")
	flag.IntVar(&w.watchers, "watchers", 100000, "watch mode: watchers")
	flag.IntVar(&w.keys, "watch-keys", 10000, "watch mode: keys watched (and written)")
	flag.IntVar(&w.streams, "watch-streams", 100, "watch mode: watch streams carrying the watchers (10 per connection)")
	flag.IntVar(&w.puts, "puts", 20000, "watch mode: puts in each of the two phases")
	flag.IntVar(&w.putClients, "put-clients", 8, "watch mode: concurrent writers")
	flag.IntVar(&s.keys, "keys", 100000, "keys loaded under the prefix")
	flag.IntVar(&s.value, "value", 1024, "value size in bytes")
	flag.IntVar(&s.lists, "lists", 20, "concurrent unpaginated LISTs of the prefix")
	flag.IntVar(&s.rounds, "rounds", 1, "rounds (each runs metastore then etcd)")
	flag.DurationVar(&s.listTimeout, "list-timeout", 5*time.Minute, "deadline of each LIST")
	flag.StringVar(&s.metastore, "metastore", "", "metastore binary (empty: skip)")
	flag.StringVar(&s.etcd, "etcd", "", "etcd binary (empty: skip)")
	flag.StringVar(&s.metastoreArgs, "metastore-args", "", "extra flags for metastore, space separated")
	flag.StringVar(&s.etcdArgs, "etcd-args", "", "extra flags for etcd only, space separated")
	flag.StringVar(&s.workDir, "work-dir", "", "where data dirs go (default a temp dir)")
	flag.Parse()
	if z.values != "random" && z.values != "objects" {
		fmt.Fprintf(os.Stderr, "scale: -values must be random or objects, not %q\n", z.values)
		os.Exit(2)
	}
	nextPort.Store(int32(*portBase))
	var err error
	switch *mode {
	case "lists":
		err = run(s)
	case "watch":
		err = runWatch(s, w)
	case "size":
		err = runSize(s, z)
	default:
		err = fmt.Errorf("unknown -mode %q (lists, watch or size)", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(s settings) error {
	return forEachServer(s, "lists", func(srv server) error {
		r, err := measure(s, srv)
		if err == nil {
			report(s, r)
		}
		return err
	})
}

// server is one started member: its process, client URL and a client.
type server struct {
	name string
	proc *framework.Process
	url  string
	c    *clientv3.Client
	// args and dir start it again on the same data dir (size mode).
	bin, dir string
	args     []string
}

// pid is the server process's ID.
func (s server) pid() int { return s.proc.Pid() }

// forEachServer starts metastore then etcd (those given), round after
// round, each on a fresh data dir under the work dir (a temp dir unless
// -work-dir is set), runs measure on it, and stops it.
func forEachServer(s settings, mode string, measure func(srv server) error) error {
	if s.workDir == "" {
		d, err := os.MkdirTemp("", "bench-scale-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		s.workDir = d
	}
	for round := range s.rounds {
		for _, srv := range []struct{ name, bin, extra string }{{"metastore", s.metastore, s.metastoreArgs}, {"etcd", s.etcd, s.etcdArgs}} {
			if srv.bin == "" {
				continue
			}
			dir := filepath.Join(s.workDir, fmt.Sprintf("%s-%s-%d", srv.name, mode, round))
			if err := withServer(srv.name, srv.bin, strings.Fields(srv.extra), dir, measure); err != nil {
				return fmt.Errorf("%s round %d: %w", srv.name, round, err)
			}
		}
	}
	return nil
}

// withServer starts one member on dir, runs f on it, stops it and removes
// its data (the size mode's runs would otherwise fill the disk).
func withServer(name, bin string, extra []string, dir string, f func(srv server) error) error {
	srv, err := startServer(name, bin, extra, dir)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Join(dir, "data"))
	defer func() { srv.proc.Stop(time.Minute) }()
	defer srv.c.Close()
	return f(srv)
}

// nextPort is the next port tried by port: the benchmark uses 127.0.0.1
// ports from 46000 upward, apart from the test suites' ranges.
var nextPort atomic.Int32

// port returns the next port from 46000 upward that is free now.
func port() (int, error) {
	nextPort.CompareAndSwap(0, 46000)
	for range 1000 {
		p := int(nextPort.Add(1)) - 1
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		if err := l.Close(); err != nil {
			return 0, err
		}
		return p, nil
	}
	return 0, errors.New("no free port from 46000 upward")
}

// urls returns a client and a peer URL on free ports.
func urls() (client, peer string, err error) {
	cp, err := port()
	if err != nil {
		return "", "", err
	}
	pp, err := port()
	if err != nil {
		return "", "", err
	}
	return fmt.Sprintf("http://127.0.0.1:%d", cp), fmt.Sprintf("http://127.0.0.1:%d", pp), nil
}

// startServer starts bin with etcd's flags (metastore takes the same) as a
// single-member cluster and waits until it answers.
func startServer(name, bin string, extra []string, dir string) (server, error) {
	curl, purl, err := urls()
	if err != nil {
		return server{}, err
	}
	args := append([]string{
		"--name", "s0", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "s0=" + purl,
	}, extra...)
	if !slices.Contains(extra, "--quota-backend-bytes") {
		args = append(args, "--quota-backend-bytes", strconv.Itoa(8<<30))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return server{}, err
	}
	srv := server{name: name, bin: bin, dir: dir, args: args, url: curl}
	if _, err := srv.start(); err != nil {
		return server{}, err
	}
	return srv, nil
}

// start starts the server process (again) and waits until a linearizable
// read succeeds; it returns how long that took from the exec.
func (srv *server) start() (time.Duration, error) {
	t0 := time.Now()
	p, err := framework.StartProcess(framework.ProcessOptions{Bin: srv.bin, Args: srv.args, LogPath: filepath.Join(srv.dir, "server.log")})
	if err != nil {
		return 0, err
	}
	c, d, err := waitServes(p, srv.url, 30*time.Minute, t0)
	if err != nil {
		p.Stop(time.Minute)
		return 0, fmt.Errorf("%s (log %s): %w", srv.bin, filepath.Join(srv.dir, "server.log"), err)
	}
	srv.proc, srv.c = p, c
	return d, nil
}

// waitServes polls url with a linearizable read until one succeeds (or p
// exits, or timeout passes) and returns a client of it and the time since t0.
func waitServes(p *framework.Process, url string, timeout time.Duration, t0 time.Time) (*clientv3.Client, time.Duration, error) {
	// First the port, polled with plain dials: a gRPC client that finds
	// nothing listening backs off for a second or more between attempts.
	addr := strings.TrimPrefix(url, "http://")
	err := framework.WaitFor(timeout, 5*time.Millisecond, func() (bool, error) {
		if !p.Running() {
			return false, errors.New("server exited")
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, nil
		}
		return true, conn.Close()
	})
	if err != nil {
		return nil, 0, err
	}
	c, err := newClient(url)
	if err != nil {
		return nil, 0, err
	}
	var d time.Duration
	err = framework.WaitFor(timeout, 5*time.Millisecond, func() (bool, error) {
		if !p.Running() {
			return false, errors.New("server exited")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.Get(ctx, "health"); err != nil {
			return false, nil
		}
		d = time.Since(t0)
		return true, nil
	})
	if err != nil {
		c.Close()
		return nil, 0, err
	}
	return c, d, nil
}

func newClient(url string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// hwm reads VmHWM (peak resident set, KiB) of pid.
func hwm(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// resetHWM resets the peak RSS of pid (Linux: "5" to clear_refs).
func resetHWM(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

func measure(s settings, srv server) (result, error) {
	r := result{server: srv.name}
	pid, url, c := srv.pid(), srv.url, srv.c
	var err error
	start := time.Now()
	if err := load(c, s); err != nil {
		return r, fmt.Errorf("load: %w", err)
	}
	r.loadTime = time.Since(start)
	if r.hwmAfterLoad, err = hwm(pid); err != nil {
		return r, err
	}
	if err := resetHWM(pid); err != nil {
		return r, fmt.Errorf("reset VmHWM: %w", err)
	}

	// The writer puts one 1 KiB value at a time until the LISTs are done.
	stopW := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		val := strings.Repeat("w", 1024)
		for i := 0; ; i++ {
			select {
			case <-stopW:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			t0 := time.Now()
			_, err := c.Put(ctx, fmt.Sprintf("/writer/%d", i%1000), val)
			cancel()
			if err != nil {
				r.putErrs++
				continue
			}
			r.puts = append(r.puts, time.Since(t0))
		}
	}()
	var mu sync.Mutex
	var lw sync.WaitGroup
	for range s.lists {
		lw.Add(1)
		go func() {
			defer lw.Done()
			// Each LIST on its own connection, as separate clients would.
			lc, err := newClient(url)
			if err != nil {
				mu.Lock()
				r.listErrs = append(r.listErrs, err.Error())
				mu.Unlock()
				return
			}
			defer lc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), s.listTimeout)
			defer cancel()
			t0 := time.Now()
			resp, err := lc.Get(ctx, "/registry/pods/", clientv3.WithPrefix())
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				r.listErrs = append(r.listErrs, err.Error())
			case len(resp.Kvs) != s.keys:
				r.listErrs = append(r.listErrs, fmt.Sprintf("%d keys, want %d", len(resp.Kvs), s.keys))
			default:
				r.listsOK++
				r.listDur = append(r.listDur, d)
			}
		}()
	}
	lw.Wait()
	close(stopW)
	wg.Wait()
	if r.hwmDuringLists, err = hwm(pid); err != nil {
		return r, err
	}
	return r, nil
}

// load writes the keys in transactions of 100 puts from 8 clients.
func load(c *clientv3.Client, s settings) error {
	val := strings.Repeat("v", s.value)
	const batch, workers = 100, 8
	next := make(chan int)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ops := make([]clientv3.Op, 0, batch)
				for j := i; j < min(i+batch, s.keys); j++ {
					ops = append(ops, clientv3.OpPut(fmt.Sprintf("/registry/pods/ns%d/pod-%08d", j%50, j), val))
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_, err := c.Txn(ctx).Then(ops...).Commit()
				cancel()
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := 0; i < s.keys; i += batch {
		select {
		case next <- i:
		case err = <-errc:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err = <-errc:
	default:
	}
	return err
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

func report(s settings, r result) {
	fmt.Printf("%-9s keys=%d value=%d lists=%d: load %.1fs, VmHWM after load %d MiB, VmHWM during lists %d MiB, lists ok %d/%d, list p50 %.2fs max %.2fs, puts %d (errors %d) p50 %.1fms p99 %.1fms\n",
		r.server, s.keys, s.value, s.lists, r.loadTime.Seconds(), r.hwmAfterLoad>>10, r.hwmDuringLists>>10,
		r.listsOK, s.lists, pct(r.listDur, 0.5).Seconds(), pct(r.listDur, 1).Seconds(), len(r.puts), r.putErrs,
		float64(pct(r.puts, 0.5).Microseconds())/1000, float64(pct(r.puts, 0.99).Microseconds())/1000)
	for i, e := range r.listErrs {
		if i == 3 {
			fmt.Printf("  ... %d more list errors\n", len(r.listErrs)-3)
			break
		}
		fmt.Printf("  list error: %s\n", e)
	}
}
