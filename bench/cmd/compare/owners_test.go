package main

import (
	"bytes"
	"context"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// testProfile builds a CPU profile from samples given as stacks, leaf
// first; a frame "a|b" is a location where a was inlined into b.
func testProfile(samples map[string]int64) *profile.Profile {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
	}
	funcs := map[string]*profile.Function{}
	fn := func(name string) *profile.Function {
		if f, ok := funcs[name]; ok {
			return f
		}
		f := &profile.Function{ID: uint64(len(funcs) + 1), Name: name}
		funcs[name] = f
		p.Function = append(p.Function, f)
		return f
	}
	for stack, v := range samples {
		s := &profile.Sample{Value: []int64{v / 10_000_000, v}}
		for _, frame := range strings.Split(stack, " < ") {
			loc := &profile.Location{ID: uint64(len(p.Location) + 1)}
			for _, name := range strings.Split(frame, "|") {
				loc.Line = append(loc.Line, profile.Line{Function: fn(name)})
			}
			p.Location = append(p.Location, loc)
			s.Location = append(s.Location, loc)
		}
		p.Sample = append(p.Sample, s)
	}
	return p
}

func TestSplitByOwner(t *testing.T) {
	const ms = int64(time.Millisecond)
	p := testProfile(map[string]int64{
		// gRPC writing a response: gRPC's, and in a system call.
		"internal/runtime/syscall/linux.Syscall6 < syscall.write < google.golang.org/grpc/internal/transport.(*bufWriter).Flush": 100 * ms,
		// gRPC decoding a request: protobuf's work for gRPC.
		"google.golang.org/protobuf/internal/impl.consumeBytes < google.golang.org/protobuf/proto.Unmarshal < google.golang.org/grpc.(*Server).processUnaryRPC": 50 * ms,
		// The server decoding a Raft entry: protobuf's work for the server.
		"google.golang.org/protobuf/proto.Unmarshal < github.com/metastore/metastore/internal/apply.(*Applier).request < google.golang.org/grpc.(*Server).handleStream": 30 * ms,
		// An allocation that assists the collector: the collector's.
		"runtime.mallocgc < runtime.gcAssistAlloc < github.com/metastore/metastore/internal/mvcc.(*TxnWrite).Put":  40 * ms,
		"runtime.findRunnable < runtime.schedule < runtime.park_m < runtime.mcall":                                 20 * ms,
		"runtime.memmove < github.com/cockroachdb/pebble/v2.(*DB).Apply < github.com/metastore/metastore/x.Commit": 60 * ms,
		// raft with protobuf's marshalling inlined into it.
		"google.golang.org/protobuf/proto.Size|go.etcd.io/raft/v3.(*raft).appendEntry < github.com/metastore/metastore/internal/raftnode.(*Node).run": 25 * ms,
		"runtime.copystack < runtime.newstack < runtime.morestack":                                                                                    10 * ms,
		"runtime.memmove": 5 * ms,
		// A sample of etcd's bbolt and its server.
		"go.etcd.io/bbolt.(*Tx).Commit < go.etcd.io/etcd/server/v3/storage/backend.(*batchTx).commit": 10 * ms,
	})
	s, err := splitByOwner(p)
	if err != nil {
		t.Fatal(err)
	}
	const total = 350.0
	want := map[string]float64{
		ownerGRPC: 150 / total, ownerServer: 30 / total, ownerGC: 40 / total, ownerSched: 20 / total,
		ownerStorage: 70 / total, ownerRaft: 25 / total, ownerStack: 10 / total, ownerRuntime: 5 / total,
	}
	for o, w := range want {
		if math.Abs(s.share[o]-w) > 1e-9 {
			t.Errorf("share of %s = %.4f, want %.4f", o, s.share[o], w)
		}
	}
	var sum float64
	for _, v := range s.share {
		sum += v
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("shares sum to %.4f, want 1", sum)
	}
	if math.Abs(s.kernel-100/total) > 1e-9 {
		t.Errorf("kernel share = %.4f, want %.4f", s.kernel, 100/total)
	}
}

func TestSplitByOwnerRejectsAProfileWithoutCPU(t *testing.T) {
	p := testProfile(map[string]int64{"runtime.memmove": 0})
	if _, err := splitByOwner(p); err == nil {
		t.Fatal("a profile without CPU samples was split")
	}
	p.SampleType = []*profile.ValueType{{Type: "alloc_space", Unit: "bytes"}}
	if _, err := splitByOwner(p); err == nil {
		t.Fatal("a profile without a cpu sample type was split")
	}
}

// profileMembers fetches every member's profile and merges them; a member
// that does not serve one fails the whole (its CPU would be missing).
func TestProfileMembersMergesEveryMember(t *testing.T) {
	serve := func(p *profile.Profile) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/debug/pprof/profile" || r.URL.Query().Get("seconds") != "1" {
				http.NotFound(w, r)
				return
			}
			var b bytes.Buffer
			if err := p.Write(&b); err != nil {
				t.Error(err)
			}
			_, _ = w.Write(b.Bytes())
		}))
	}
	a := serve(testProfile(map[string]int64{"google.golang.org/grpc.f": 30_000_000}))
	defer a.Close()
	b := serve(testProfile(map[string]int64{"go.etcd.io/raft/v3.g": 10_000_000}))
	defer b.Close()
	port := func(s *httptest.Server) int { return s.Listener.Addr().(*net.TCPAddr).Port }
	p, err := profileMembers(context.Background(), []int{port(a), port(b)}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := splitByOwner(p)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(s.share[ownerGRPC]-0.75) > 1e-9 || math.Abs(s.share[ownerRaft]-0.25) > 1e-9 {
		t.Fatalf("merged shares %v, want grpc 0.75 raft 0.25", s.share)
	}
	missing := httptest.NewServer(http.NotFoundHandler())
	defer missing.Close()
	if _, err := profileMembers(context.Background(), []int{port(a), port(missing)}, 0, 1); err == nil {
		t.Fatal("a member without pprof did not fail the profile")
	}
}

// recordOwners turns a profile into CPU per request by owner, and a failed
// profile into NA values and a failure note.
func TestRecordOwners(t *testing.T) {
	h := &harness{cfg: &config{}, out: t.TempDir()}
	p := testProfile(map[string]int64{
		"github.com/metastore/metastore/a.f": 60_000_000,
		"google.golang.org/grpc.g":           40_000_000,
	})
	h.recordOwners(1, "metastore", "put-1000", h.out+"/r1", "50.0", profiled{p: p})
	got := map[string]string{}
	for _, r := range h.results {
		got[r.metric] = r.value
	}
	for metric, want := range map[string]string{"owner_server_us": "30.00", "owner_grpc_us": "20.00", "owner_own_us": "30.00",
		"owner_outside_us": "20.00", "owner_raft_us": "0.00", "owner_kernel_us": "0.00"} {
		if got[metric] != want {
			t.Errorf("%s = %q, want %q", metric, got[metric], want)
		}
	}
	h.results = nil
	h.recordOwners(1, "etcd", "put-1000", h.out+"/r1e", "50.0", profiled{err: context.DeadlineExceeded})
	for _, r := range h.results {
		if r.value != "NA" {
			t.Errorf("%s = %q after a failed profile, want NA", r.metric, r.value)
		}
	}
	if !strings.Contains(h.failures.String(), "deadline") {
		t.Errorf("failure not noted: %q", h.failures.String())
	}
	table := ownersReport([]cpuRow{{"put, 1000 clients", "put-1000", "-", 0}}, append(h.results, result{1, "metastore", "put-1000", "owner_server_us", "30"}), 5)
	if !strings.Contains(table, "put, 1000 clients:") || !strings.Contains(table, "| server code") {
		t.Errorf("report lacks the benchmark's table:\n%s", table)
	}
}
