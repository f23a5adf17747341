package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/metastore/metastore/tests/framework"
)

const usage = `Usage: bench/compare.sh [--quick] [--large|--watchers|--pinned|--profile|--path] [--members N] [--rounds N] [--write-docs[=FILE]] [--keep]
  (default)      the suite: put, range (l/s), txn-put, watch-latency, with
                 the server's and the load generator's CPU per request, and
                 the floors of a put (fdatasync latency of the data dir's
                 filesystem, a loopback gRPC round trip) measured in the run
  --quick        1 round, small totals: a smoke test of the harness (~2 min)
  --large        opt-in large data set: 1M keys of 1 KiB, then ranges and
                 puts; peak RSS and on-disk size (takes long)
  --watchers     opt-in watch scale test: a put load from 100 clients with no
                 watcher, then the same load with 10,000 watchers (100
                 streams x 100) on the 1,000 keys written: write throughput
                 with and without them, events/s delivered
  --pinned       put, range (l/s) and txn-put with 1000 clients, each round
                 twice per server: unpinned, then with every member on one
                 CPU and the load generator on another (taskset), so that
                 throughput reflects the server's efficiency
  --profile      put (1 and 1000 clients), range (l/s) and txn-put with 1000
                 clients, each server started with --enable-pprof and
                 profiled for BENCH_PROFILE_SECONDS during each benchmark:
                 its CPU per request split by owner (its own code, raft,
                 the storage engine, gRPC, the collector, the scheduler)
  --path         put from one client, each server started with
                 --enable-pprof and traced (Go execution trace) for
                 BENCH_PATH_SECONDS from 0.5 s into the benchmark: where a
                 lone put's latency goes inside each server, along its
                 critical path (bench/putpath), with the floors of a put
  --members N    run every server as a cluster of N members on this machine
                 (default 1); writes go to the leader (--target-leader), reads
                 to all members, as in etcd's performance doc. Memory is the
                 largest member's, CPU and disk the sum over members.
  --rounds N     rounds (default 3; --large default 1)
  --write-docs   write the result into docs/benchmarks.md (or FILE), replacing
                 only the section of this mode
  --keep         keep the work dir (logs, raw outputs; data dirs are always
                 removed after each round to save disk)
Environment (all optional; the defaults keep a full run under ~15 min on 2 cores):
  BENCH_ROUNDS, BENCH_PUT1_TOTAL, BENCH_PUT_TOTAL, BENCH_RANGE1_TOTAL,
  BENCH_RANGE_TOTAL, BENCH_TXN_TOTAL, BENCH_WATCH_PUTS, BENCH_WATCH_RATE,
  BENCH_VAL_SIZE, BENCH_LARGE_KEYS, BENCH_LARGE_VAL_SIZE,
  BENCH_LARGE_RANGE_TOTAL, BENCH_LARGE_SCAN_TOTAL, BENCH_LARGE_PUT_TOTAL,
  BENCH_WATCHERS_PUTS, BENCH_FSYNC_N (fdatasyncs per floor measurement),
  BENCH_RTT_N (round trips per floor measurement), BENCH_PROFILE_SECONDS
  (--profile: seconds of each profile, from 1 s into the benchmark),
  BENCH_PATH_SECONDS (--path: seconds of each trace),
  BENCH_CLIENT_PORT (32379), BENCH_PEER_PORT (32380), BENCH_TIMEOUT (seconds
  per benchmark run), BENCH_DIR (parent of the work dir; default $TMPDIR or
  /tmp), BENCH_ORDER ("metastore etcd"), BENCH_MEMBERS (same as --members),
  METASTORE_BIN (use this binary instead of building ./cmd/metastore),
  METASTORE_TOOLS_BIN (where scripts/install-tools.sh puts the tools).
`

func main() { os.Exit(run(os.Args[1:])) }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// config is what the flags and the environment ask for.
type config struct {
	quick, large, watchers, keep bool
	pinned, profile, path        bool
	writeDocs                    string
	roundsFlag                   string
	mode, section                string
	members, rounds              int
	order                        []string
	clientPort, peerPort         int
	timeout                      int // seconds per benchmark run
	// totals and sizes, by their BENCH_ name without the prefix
	n map[string]int
}

// defaults are the totals of a full run, sized so that one server-round of
// the suite takes about 75 s on 2 cores; quickDefaults replace them with
// --quick.
var (
	defaults = map[string]int{
		"PUT1_TOTAL": 5000, "PUT_TOTAL": 100000, "RANGE1_TOTAL": 20000, "RANGE_TOTAL": 100000,
		"TXN_TOTAL": 60000, "WATCH_PUTS": 1000, "WATCH_RATE": 100, "VAL_SIZE": 256,
		"LARGE_KEYS": 1000000, "LARGE_VAL_SIZE": 1024, "LARGE_RANGE_TOTAL": 20000,
		"LARGE_SCAN_TOTAL": 500, "LARGE_PUT_TOTAL": 50000, "WATCHERS_PUTS": 20000,
		"TIMEOUT": 600, "CLIENT_PORT": 32379, "PEER_PORT": 32380,
		"FSYNC_N": 1000, "RTT_N": 5000, "PROFILE_SECONDS": 5, "PATH_SECONDS": 1,
	}
	quickDefaults = map[string]int{
		"PUT1_TOTAL": 300, "PUT_TOTAL": 5000, "RANGE1_TOTAL": 1000, "RANGE_TOTAL": 5000,
		"TXN_TOTAL": 5000, "WATCH_PUTS": 100, "LARGE_KEYS": 20000, "LARGE_RANGE_TOTAL": 2000,
		"LARGE_SCAN_TOTAL": 200, "LARGE_PUT_TOTAL": 2000, "WATCHERS_PUTS": 2000,
		"FSYNC_N": 200, "RTT_N": 1000, "PROFILE_SECONDS": 2,
	}
	// profileDefaults (--profile) make each benchmark outlast its profile
	// (BENCH_PROFILE_SECONDS from 1 s in) at this machine's rates.
	profileDefaults = map[string]int{
		"PUT1_TOTAL": 15000, "PUT_TOTAL": 250000, "RANGE_TOTAL": 400000, "TXN_TOTAL": 200000,
	}
)

func parseConfig(args []string, root string) (*config, error) {
	c := &config{n: map[string]int{}}
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	fs.BoolVar(&c.quick, "quick", false, "")
	fs.BoolVar(&c.large, "large", false, "")
	fs.BoolVar(&c.watchers, "watchers", false, "")
	fs.BoolVar(&c.keep, "keep", false, "")
	fs.BoolVar(&c.pinned, "pinned", false, "")
	fs.BoolVar(&c.profile, "profile", false, "")
	fs.BoolVar(&c.path, "path", false, "")
	fs.StringVar(&c.roundsFlag, "rounds", "", "")
	members := fs.String("members", "", "")
	// --write-docs takes an optional value: rewrite the bare flag.
	for i, a := range args {
		if a == "--write-docs" || a == "-write-docs" {
			args[i] = "--write-docs=" + filepath.Join(root, "docs", "benchmarks.md")
		}
	}
	fs.StringVar(&c.writeDocs, "write-docs", "", "")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprint(os.Stderr, usage)
		return nil, fmt.Errorf("unknown argument: %s", fs.Arg(0))
	}
	modes := 0
	for _, on := range []bool{c.large, c.watchers, c.pinned, c.profile, c.path} {
		if on {
			modes++
		}
	}
	if modes > 1 {
		return nil, errors.New("--large, --watchers, --pinned, --profile and --path are separate runs")
	}
	for name, def := range defaults {
		if p, ok := profileDefaults[name]; ok && c.profile && !c.quick {
			def = p
		}
		// --path keeps the full put-1 under --quick: its trace starts
		// pathDelay into the run and needs the load to last past it.
		if q, ok := quickDefaults[name]; ok && c.quick && !(c.path && name == "PUT1_TOTAL") {
			def = q
		}
		v, err := envInt("BENCH_"+name, def)
		if err != nil {
			return nil, err
		}
		c.n[name] = v
	}
	c.timeout, c.clientPort, c.peerPort = c.n["TIMEOUT"], c.n["CLIENT_PORT"], c.n["PEER_PORT"]
	defRounds := 3
	if c.quick || c.large {
		defRounds = 1
	}
	var err error
	if c.roundsFlag != "" {
		c.rounds, err = positive("--rounds", c.roundsFlag)
	} else {
		c.rounds, err = envInt("BENCH_ROUNDS", defRounds)
	}
	if err != nil {
		return nil, err
	}
	if *members != "" {
		c.members, err = positive("--members", *members)
	} else {
		c.members, err = envInt("BENCH_MEMBERS", 1)
	}
	if err != nil {
		return nil, err
	}
	if c.members > 5 {
		return nil, fmt.Errorf("--members: at most 5 on one machine, got %d", c.members)
	}
	c.order = strings.Fields(os.Getenv("BENCH_ORDER"))
	if len(c.order) == 0 {
		c.order = []string{"metastore", "etcd"}
	}
	for _, s := range c.order {
		if s != "metastore" && s != "etcd" {
			return nil, fmt.Errorf("BENCH_ORDER: unknown server %q", s)
		}
	}
	c.mode = "suite"
	if c.large {
		c.mode = "large"
	}
	if c.watchers {
		c.mode = "watchers"
	}
	if c.pinned {
		c.mode = "pinned"
	}
	if c.profile {
		c.mode = "profile"
	}
	if c.path {
		c.mode = "path"
	}
	c.section = c.mode
	if c.members > 1 {
		c.section = fmt.Sprintf("%s-%d-members", c.mode, c.members)
	}
	return c, nil
}

func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	return positive(name, v)
}

func positive(name, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || strings.HasPrefix(v, "0") || strings.HasPrefix(v, "+") {
		return 0, fmt.Errorf("%s must be a positive integer, got '%s'", name, v)
	}
	return n, nil
}

func run(args []string) int {
	root, err := framework.RepoRoot()
	if err != nil {
		logf("compare: %v", err)
		return 1
	}
	cfg, err := parseConfig(args, root)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		logf("compare: %v", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, err := newHarness(ctx, cfg, root)
	if err != nil {
		logf("compare: %v", err)
		if h != nil {
			h.close(true)
		}
		return 1
	}
	failed, err := h.runRounds()
	if err != nil {
		logf("compare: %v", err)
		h.close(true)
		return 1
	}
	if err := h.report(); err != nil {
		logf("compare: %v", err)
		h.close(true)
		return 1
	}
	h.close(failed)
	if failed {
		return 1
	}
	return 0
}

// harness is one comparison run: its work dir, the tools, the running
// servers and everything measured.
type harness struct {
	ctx  context.Context
	cfg  *config
	root string

	work, out                        string
	msBin, etcdBin, etcdctl, benchmk string
	msVersion                        string
	clientPorts, peerPorts           []int
	names                            []string
	endpoint, initialCluster         string
	extraFlags                       []string
	writeTarget                      []string
	clkTck                           float64
	pin                              pinner
	srvCPU, cliCPU                   int  // --pinned: the CPUs of the members and of the load generator
	pinned                           bool // the running server and its load are pinned
	failed                           bool // a server failed a benchmark or died

	servers            []*framework.Process // the members of the running server
	results            []result
	loads              []string // round \t server \t bench \t loadavg
	failures           strings.Builder
	commands           []string
	cmdNames           map[string]bool
	pathDetail         map[string]string // --path: each server's per-goroutine table of its first round
	startDate          string
	loadStart, loadEnd string // /proc/loadavg at the start and the end of the rounds
	elapsed            time.Duration
}

func newHarness(ctx context.Context, cfg *config, root string) (*harness, error) {
	h := &harness{ctx: ctx, cfg: cfg, root: root, cmdNames: map[string]bool{}, pathDetail: map[string]string{}, clkTck: clockTicks()}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		return nil, errors.New("needs Linux /proc (peak RSS is read from /proc/<pid>/status)")
	}
	for i := 0; i < cfg.members; i++ {
		h.clientPorts = append(h.clientPorts, cfg.clientPort+10*i)
		h.peerPorts = append(h.peerPorts, cfg.peerPort+10*i)
		h.names = append(h.names, fmt.Sprintf("bench%d", i))
	}
	var eps, ic []string
	for i, n := range h.names {
		eps = append(eps, fmt.Sprintf("127.0.0.1:%d", h.clientPorts[i]))
		ic = append(ic, fmt.Sprintf("%s=http://127.0.0.1:%d", n, h.peerPorts[i]))
	}
	h.endpoint, h.initialCluster = strings.Join(eps, ","), strings.Join(ic, ",")
	if cfg.members > 1 {
		h.writeTarget = []string{"--target-leader"}
	}
	if cfg.pinned {
		var err error
		if h.srvCPU, h.cliCPU, err = pinCPUs(); err != nil {
			return nil, err
		}
		h.pin = newPinner()
	}
	if cfg.large {
		// 1M x 1 KiB must fit in either server's backend quota (default 2 GiB).
		h.extraFlags = []string{"--quota-backend-bytes=8589934592"}
	}

	logf("building reference tools (scripts/install-tools.sh)")
	inst := exec.CommandContext(ctx, filepath.Join(root, "scripts", "install-tools.sh"), "bench")
	inst.Stdout, inst.Stderr = os.Stderr, os.Stderr
	if err := inst.Run(); err != nil {
		return nil, fmt.Errorf("scripts/install-tools.sh bench: %w", err)
	}
	bin := filepath.Join(root, ".bin")
	if d := os.Getenv(framework.EnvToolsBin); d != "" {
		bin = d
	}
	h.etcdBin, h.etcdctl, h.benchmk = filepath.Join(bin, "etcd-ref"), filepath.Join(bin, "etcdctl"), filepath.Join(bin, "benchmark")
	for _, b := range []string{h.etcdBin, h.etcdctl, h.benchmk} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("missing %s", b)
		}
	}

	parent := os.Getenv("BENCH_DIR")
	if parent == "" {
		parent = os.TempDir()
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(parent, "metastore-bench.")
	if err != nil {
		return nil, err
	}
	h.work, h.out = work, filepath.Join(work, "out")
	if err := os.MkdirAll(filepath.Join(work, "data"), 0o755); err != nil {
		return h, err
	}
	if err := os.MkdirAll(h.out, 0o755); err != nil {
		return h, err
	}
	if p := os.Getenv("METASTORE_BIN"); p != "" {
		h.msBin = p
	} else {
		h.msBin = filepath.Join(work, "metastore")
		logf("building ./cmd/metastore into %s", h.msBin)
		b := exec.CommandContext(ctx, "go", "build", "-o", h.msBin, "./cmd/metastore")
		b.Dir, b.Stdout, b.Stderr = root, os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return h, fmt.Errorf("go build ./cmd/metastore: %w", err)
		}
	}
	if _, err := os.Stat(h.msBin); err != nil {
		return h, fmt.Errorf("missing metastore binary %s", h.msBin)
	}
	h.msVersion = "unknown"
	if v, err := h.output("git", "rev-parse", "--short", "HEAD"); err == nil {
		h.msVersion = v
	}
	// Only uncommitted changes to what is built count: docs (--write-docs
	// of an earlier run) and scripts do not change what is measured.
	if st, err := h.output("git", "status", "--porcelain", "--untracked-files=no", "--", "*.go", "go.mod", "go.sum"); err == nil && st != "" {
		h.msVersion += fmt.Sprintf(" + %d uncommitted file(s)", len(strings.Split(st, "\n")))
	}
	return h, nil
}

// output runs a command in the repository and returns its trimmed stdout.
func (h *harness) output(name string, args ...string) (string, error) {
	cmd := exec.CommandContext(h.ctx, name, args...)
	cmd.Dir = h.root
	b, err := cmd.Output()
	return strings.TrimSpace(string(b)), err
}

// close stops whatever still runs and removes the work dir unless it is
// to be kept (--keep, or a failed run).
func (h *harness) close(failed bool) {
	for _, p := range h.servers {
		p.Stop(20 * time.Second)
	}
	h.servers = nil
	if h.work == "" {
		return
	}
	_ = os.RemoveAll(filepath.Join(h.work, "data"))
	if h.cfg.keep || failed {
		logf("work dir kept: %s", h.work)
		return
	}
	_ = os.RemoveAll(h.work)
}

func (h *harness) record(round int, server, bench, metric, value string) {
	h.results = append(h.results, result{round: round, server: server, bench: bench, metric: metric, value: value})
}

func (h *harness) failf(format string, args ...any) {
	fmt.Fprintf(&h.failures, format, args...)
}

func (h *harness) runRounds() (failed bool, err error) {
	cfg := h.cfg
	logf("mode=%s members=%d rounds=%d order=%s work=%s", cfg.mode, cfg.members, cfg.rounds, strings.Join(cfg.order, " "), h.work)
	h.startDate = time.Now().UTC().Format("2006-01-02 15:04 UTC")
	h.loadStart = loadAvg()
	defer func() { h.loadEnd = loadAvg() }()
	begin := time.Now()
	// --pinned runs each server twice per round, unpinned then pinned,
	// each time on a fresh data dir (the same puts twice would overwrite).
	variants := []bool{false}
	if cfg.pinned {
		variants = []bool{false, true}
	}
	for round := 1; round <= cfg.rounds; round++ {
		if cfg.mode == "suite" || cfg.mode == "path" {
			h.measureFloors(round)
		}
		for _, pinned := range variants {
			if err := h.runServers(round, pinned); err != nil {
				return true, err
			}
		}
	}
	h.elapsed = time.Since(begin)
	return h.failed, nil
}

// runServers runs this mode's benchmarks against each server in turn.
func (h *harness) runServers(round int, pinned bool) error {
	cfg := h.cfg
	h.pinned = pinned
	variant := ""
	if pinned {
		variant = "-pinned"
	}
	for _, server := range cfg.order {
		data := filepath.Join(h.work, "data", fmt.Sprintf("r%d-%s%s", round, server, variant))
		logPath := filepath.Join(h.out, fmt.Sprintf("r%d-%s%s.log", round, server, variant))
		logf("round %d/%d: starting %s%s", round, cfg.rounds, server, variant)
		if err := h.startServer(server, data, logPath); err != nil {
			return err
		}
		var ok bool
		switch cfg.mode {
		case "large":
			ok = h.largeSet(round, server, data)
		case "watchers":
			ok = h.watchersSet(round, server)
		case "pinned":
			ok = h.runSet(round, server, pinnedBenches)
		case "profile":
			ok = h.runSet(round, server, profileBenches)
		case "path":
			ok = h.runSet(round, server, pathBenches)
		default:
			ok = h.suite(round, server)
		}
		if !ok {
			h.failed = true
		}
		h.stopServer(round, server)
		switch cfg.mode {
		case "large":
			h.recordDisk(round, server, "large-end", data)
		case "suite":
			h.recordDisk(round, server, "end-of-suite", data)
		}
		_ = os.RemoveAll(data)
		if server == "metastore" {
			h.logErrors(round, logPath)
		}
		if h.ctx.Err() != nil {
			return errors.New("interrupted")
		}
	}
	return nil
}

// logErrors notes the error, fatal and panic lines of metastore's logs.
func (h *harness) logErrors(round int, logPath string) {
	files, _ := filepath.Glob(logPath + "*")
	var bad []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, `"level":"error"`) || strings.Contains(l, `"level":"fatal"`) ||
				strings.Contains(l, `"level":"panic"`) || strings.HasPrefix(l, "panic:") {
				bad = append(bad, l)
			}
		}
	}
	if len(bad) == 0 {
		return
	}
	h.failf("### round %d, metastore log errors (first 5 of %d):\n", round, len(bad))
	for i, l := range bad {
		if i == 5 {
			break
		}
		if len(l) > 400 {
			l = l[:400]
		}
		h.failf("%s\n", l)
	}
}

// memberLog: member 0 logs to logPath (what the report reads), others to
// logPath.<i>.
func memberLog(logPath string, i int) string {
	if i == 0 {
		return logPath
	}
	return fmt.Sprintf("%s.%d", logPath, i)
}
