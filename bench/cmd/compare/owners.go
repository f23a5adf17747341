package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// Owners of a server's CPU (--profile). Issue 10 asks, for a CPU target
// that is not met, for the profile that shows whether the remaining cost is
// the server's own code or outside it (gRPC, the Go runtime, the kernel);
// splitting both servers' profiles of the same run by the same rules makes
// that comparison measured rather than read off a flame graph by eye.
const (
	ownerGRPC    = "grpc"      // gRPC and its HTTP/2 transport, with the request's proto decoding and the response's encoding
	ownerServer  = "server"    // the server's own code: handlers, interceptors, apply, MVCC, lease, watch, logging, metrics
	ownerRaft    = "raft"      // go.etcd.io/raft
	ownerStorage = "storage"   // the storage engine: Pebble (metastore), bbolt (etcd), with their compression
	ownerGC      = "gc"        // the garbage collector: background marking, assists, sweeping, scavenging
	ownerSched   = "scheduler" // the Go scheduler and network poller between goroutines
	ownerStack   = "stack"     // stack growth outside any owner's frame
	ownerRuntime = "runtime"   // anything else (the runtime and the standard library on their own)
)

// owners lists every owner in the order the report shows them.
var owners = []string{ownerServer, ownerRaft, ownerStorage, ownerGRPC, ownerGC, ownerSched, ownerStack, ownerRuntime}

// ownerOf is the owner of a function by its package path; "" for the Go
// runtime and standard library, "proto" for protobuf's runtime and the
// generated API types, whose work belongs to whoever called them (gRPC
// decoding a request, the server encoding a Raft entry).
func ownerOf(fn string) string {
	switch {
	case hasAnyPrefix(fn, "google.golang.org/grpc", "golang.org/x/net/http2", "github.com/soheilhy/cmux"):
		return ownerGRPC
	case hasAnyPrefix(fn, "google.golang.org/protobuf", "github.com/golang/protobuf", "github.com/gogo/protobuf",
		"go.etcd.io/etcd/api/"):
		return "proto"
	case hasAnyPrefix(fn, "go.etcd.io/raft"):
		return ownerRaft
	case hasAnyPrefix(fn, "github.com/cockroachdb/", "go.etcd.io/bbolt", "github.com/golang/snappy",
		"github.com/klauspost/compress", "github.com/DataDog/zstd", "github.com/minio/minlz"):
		return ownerStorage
	case hasAnyPrefix(fn, "github.com/metastore/", "go.etcd.io/etcd/", "go.uber.org/zap",
		"github.com/prometheus/", "go.opentelemetry.io/"):
		return ownerServer
	}
	return ""
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// syscallLeaves are the functions a sample ends in while the kernel works
// for the process (the profiler's signal lands in the system call).
var syscallLeaves = []string{"Syscall6", "RawSyscall6", "runtime.futex", "EpollWait", "runtime.epollwait",
	"runtime.usleep", "runtime.madvise", "runtime.mmap", "runtime.munmap", "runtime.write1", "runtime.read",
	"runtime.osyield", "runtime.tgkill", "runtime.sched_yield"}

// cpuSplit is a profile split by owner: each owner's share of the CPU
// samples, and the share of all samples spent in system calls.
type cpuSplit struct {
	share  map[string]float64
	kernel float64
}

// splitByOwner splits p's CPU time by owner. A sample in the collector's
// workers or assists is the collector's; otherwise it belongs to the owner
// of the frame nearest its leaf that has one, protobuf's work to the owner
// that called it; a sample without such a frame is the scheduler's, stack
// growth, or the runtime's.
func splitByOwner(p *profile.Profile) (cpuSplit, error) {
	vi := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			vi = i
		}
	}
	if vi < 0 {
		return cpuSplit{}, fmt.Errorf("profile has no cpu sample type")
	}
	s := cpuSplit{share: map[string]float64{}}
	var total float64
	for _, smp := range p.Sample {
		v := float64(smp.Value[vi])
		if v <= 0 {
			continue
		}
		var fns []string // leaf first; an inlined function before its caller
		for _, loc := range smp.Location {
			for _, ln := range loc.Line {
				if ln.Function != nil {
					fns = append(fns, ln.Function.Name)
				}
			}
		}
		total += v
		s.share[sampleOwner(fns)] += v
		if len(fns) > 0 && containsAny(fns[0], syscallLeaves) {
			s.kernel += v
		}
	}
	if total == 0 {
		return cpuSplit{}, fmt.Errorf("profile has no cpu samples")
	}
	for k := range s.share {
		s.share[k] /= total
	}
	s.kernel /= total
	return s, nil
}

func sampleOwner(fns []string) string {
	for _, f := range fns {
		if hasAnyPrefix(f, "runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.bgsweep",
			"runtime.bgscavenge", "runtime.GC") {
			return ownerGC
		}
	}
	for i, f := range fns {
		switch o := ownerOf(f); o {
		case "":
			continue
		case "proto":
			for _, caller := range fns[i+1:] {
				if c := ownerOf(caller); c != "" && c != "proto" {
					return c
				}
			}
			return ownerGRPC
		default:
			return o
		}
	}
	for _, f := range fns {
		if hasAnyPrefix(f, "runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.mcall",
			"runtime.netpoll", "runtime.goschedImpl", "runtime.mstart") {
			return ownerSched
		}
		if hasAnyPrefix(f, "runtime.newstack", "runtime.morestack", "runtime.copystack") {
			return ownerStack
		}
	}
	return ownerRuntime
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// profileMembers takes a CPU profile of every member for seconds, starting
// after delay (the benchmark's clients connect and warm up first), and
// merges them: a cluster's CPU is summed over its members.
func profileMembers(ctx context.Context, ports []int, delay time.Duration, seconds int) (*profile.Profile, error) {
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	type got struct {
		p   *profile.Profile
		err error
	}
	ch := make(chan got, len(ports))
	for _, port := range ports {
		go func() {
			url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", port, seconds)
			p, err := fetchProfile(ctx, url, time.Duration(seconds+30)*time.Second)
			ch <- got{p, err}
		}()
	}
	var ps []*profile.Profile
	var errs []string
	for range ports {
		g := <-ch
		if g.err != nil {
			errs = append(errs, g.err.Error())
			continue
		}
		ps = append(ps, g.p)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("profile: %s", strings.Join(errs, "; "))
	}
	return profile.Merge(ps)
}

func fetchProfile(ctx context.Context, url string, timeout time.Duration) (*profile.Profile, error) {
	b, err := getURL(ctx, url, timeout)
	if err != nil {
		return nil, err
	}
	p, err := profile.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return p, nil
}

// getURL returns the body of a GET of url that answered 200, bounded by
// timeout.
func getURL(ctx context.Context, url string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// startProfile begins what --profile measures around one benchmark (a no-op
// otherwise): the handling histogram of its method is read now and the
// members' CPU profile starts (from 1 s in); the returned function, called
// once the benchmark ended with its server CPU per request, waits for the
// profile, reads the histogram again and records both.
func (h *harness) startProfile(ctx context.Context, round int, server, bench, out string) func(srvUs string) {
	if !h.cfg.profile {
		return func(string) {}
	}
	method := handlingMethod(bench)
	var before histogram
	var beforeErr error
	if method != "" {
		before, beforeErr = scrapeHandling(ctx, h.clientPorts, method)
	}
	prof := make(chan profiled, 1)
	go func() {
		p, err := profileMembers(ctx, h.clientPorts, time.Second, h.cfg.n["PROFILE_SECONDS"])
		prof <- profiled{p, err}
	}()
	return func(srvUs string) {
		h.recordOwners(round, server, bench, out, srvUs, <-prof)
		if method == "" {
			return
		}
		var after histogram
		err := beforeErr
		if err == nil {
			after, err = scrapeHandling(h.ctx, h.clientPorts, method)
		}
		h.recordHandling(round, server, bench, before, after, err)
	}
}

// profiled is what profileMembers returned.
type profiled struct {
	p   *profile.Profile
	err error
}

// recordOwners records bench's server CPU per request split by owner: each
// owner's share of the profile times the CPU per request the run measured
// from /proc (the profile covers part of the run; the shares carry over).
// The merged profile is kept beside the benchmark's output.
func (h *harness) recordOwners(round int, server, bench, out, srvUs string, got profiled) {
	metrics := append(append([]string(nil), owners...), "kernel", "own", "outside")
	na := func() {
		for _, m := range metrics {
			h.record(round, server, bench, "owner_"+m+"_us", "NA")
		}
	}
	if got.err != nil {
		h.failf("### round %d, %s, %s: %v\n", round, server, bench, got.err)
		na()
		return
	}
	var buf bytes.Buffer
	if err := got.p.Write(&buf); err == nil {
		_ = os.WriteFile(out+".pprof", buf.Bytes(), 0o644)
	}
	split, err := splitByOwner(got.p)
	if err != nil || srvUs == "NA" {
		if err != nil {
			h.failf("### round %d, %s, %s: %v\n", round, server, bench, err)
		}
		na()
		return
	}
	us := num(srvUs)
	for _, o := range owners {
		h.record(round, server, bench, "owner_"+o+"_us", fmt.Sprintf("%.2f", split.share[o]*us))
	}
	own := split.share[ownerServer] + split.share[ownerRaft] + split.share[ownerStorage]
	h.record(round, server, bench, "owner_kernel_us", fmt.Sprintf("%.2f", split.kernel*us))
	h.record(round, server, bench, "owner_own_us", fmt.Sprintf("%.2f", own*us))
	h.record(round, server, bench, "owner_outside_us", fmt.Sprintf("%.2f", (1-own)*us))
}

// ownerLabels are the rows of an owner table.
var ownerLabels = map[string]string{
	"own":        "**the server's own work** (server + raft + storage)",
	ownerServer:  "server code (handlers, interceptors, apply, MVCC, lease, watch, logs, metrics)",
	ownerRaft:    "raft (go.etcd.io/raft)",
	ownerStorage: "storage engine (Pebble / bbolt)",
	"outside":    "**outside the server's code** (the rows below)",
	ownerGRPC:    "gRPC and HTTP/2, with proto decoding and encoding of requests and responses",
	ownerGC:      "garbage collector",
	ownerSched:   "Go scheduler and network poller",
	ownerStack:   "stack growth (outside the frames above)",
	ownerRuntime: "other runtime",
	"kernel":     "of all the above: in system calls (fdatasync, socket reads and writes, futex)",
}

// ownersReport is one table per benchmark: the median over rounds of each
// owner's CPU per request for both servers, and the ratio.
func ownersReport(rows []cpuRow, results []result, seconds int) string {
	m := collect(results)
	var b strings.Builder
	fmt.Fprintf(&b, "Server CPU per request split by owner: a CPU profile of every member (%d s from 1 s into each benchmark, merged over the members) splits the CPU per request above; each sample belongs to the owner of the frame nearest its leaf (protobuf's work to its caller), the collector's workers and assists to the collector (`bench/cmd/compare/owners.go`). Medians over rounds. The profiler itself costs a few per cent, so the totals are a little above a run without it.\n", seconds)
	order := []string{"own", ownerServer, ownerRaft, ownerStorage, "outside", ownerGRPC, ownerGC, ownerSched, ownerStack, ownerRuntime, "kernel"}
	for _, row := range rows {
		var out [][]string
		for _, o := range order {
			metric := "owner_" + o + "_us"
			ratio, _, _ := m.compared(row.bench, metric, "-", 0)
			out = append(out, append(append([]string{ownerLabels[o]}, m.both(row.bench, metric)...), ratio))
		}
		ratio, _, _ := m.compared(row.bench, "server_cpu_us", "-", 0)
		out = append(out, append(append([]string{"total (server CPU per request)"}, m.both(row.bench, "server_cpu_us")...), ratio))
		fmt.Fprintf(&b, "\n%s:\n\n%s\n", row.label, mdTable([]string{"owner", "metastore (µs/req)", "etcd (µs/req)", "ratio"}, out))
	}
	return strings.TrimSuffix(b.String(), "\n")
}
