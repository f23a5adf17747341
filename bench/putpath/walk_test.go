package putpath

import (
	"reflect"
	"strings"
	"testing"

	"golang.org/x/exp/trace"
)

const (
	reader, worker, responder trace.GoID = 1, 2, 3
)

var (
	fsyncStack = []string{"syscall.Fsync", "internal/poll.(*FD).Fsync", "server.save"}
	writeStack = []string{"syscall.write", "internal/poll.(*FD).Write", "net.(*conn).Write", "server.respond"}
)

func tr(t trace.Time, from, to trace.GoState, by trace.GoID, reason string, stack []string) transition {
	return transition{t: t, from: from, to: to, by: by, reason: reason, stack: stack}
}

// oneRequest is a request read by the reader (woken by the network at 10),
// handed to the worker (fsync 35–135), then to the responder (write
// 155–175).
func oneRequest(readerWait string) *History {
	R, W, Run, Sys := trace.GoRunnable, trace.GoWaiting, trace.GoRunning, trace.GoSyscall
	n := trace.NoGoroutine
	return &History{
		trans: map[trace.GoID][]transition{
			reader: {
				tr(0, Run, W, reader, readerWait, nil),
				tr(10, W, R, n, "", nil),
				tr(12, R, Run, n, "", nil),
				tr(25, Run, W, reader, "chan send", nil),
			},
			worker: {
				tr(1, Run, W, worker, "chan receive", nil),
				tr(20, W, R, reader, "", []string{"runtime.chansend1"}),
				tr(30, R, Run, n, "", nil),
				tr(35, Run, Sys, worker, "", fsyncStack),
				tr(135, Sys, Run, worker, "", nil),
				tr(145, Run, W, worker, "chan receive", nil),
			},
			responder: {
				tr(2, Run, W, responder, "chan receive", nil),
				tr(140, W, R, worker, "", []string{"runtime.chansend1"}),
				tr(150, R, Run, n, "", nil),
				tr(155, Run, Sys, responder, "", writeStack),
				tr(175, Sys, Run, responder, "", nil),
			},
		},
		start: map[trace.GoID]string{reader: "google.golang.org/grpc.(*Server).handleRawConn.func1", worker: "server.(*Node).run", responder: "google.golang.org/grpc/internal/transport.(*loopyWriter).run"},
	}
}

func TestWalkSplitsThePathIntoStretches(t *testing.T) {
	h := oneRequest("network")
	paths, tally := h.Paths("server.respond")
	if len(paths) != 1 || tally.Writes != 1 || len(tally.Refused) != 0 {
		t.Fatalf("found %d paths, want 1 (%s)", len(paths), tally)
	}
	want := Path{ns: 165, goroutines: 3, stretches: []stretch{
		{"syscall write", responder, 20}, {"running", responder, 5}, {"runnable", responder, 10},
		{"running", worker, 5}, {"syscall fsync", worker, 100}, {"running", worker, 5}, {"runnable", worker, 10},
		{"running", reader, 8}, {"runnable", reader, 2},
	}}
	if !reflect.DeepEqual(paths[0], want) {
		t.Errorf("path:\n%+v\nwant:\n%+v", paths[0], want)
	}
	sum := h.Summarize(paths)
	approx := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
	for cat, want := range map[string]float64{CatSync: 0.100, CatWrite: 0.020, CatSched: 0.022, CatServer: 0.010, CatGRPC: 0.013} {
		if !approx(sum.Us[cat], want) {
			t.Errorf("summary %q = %v µs, want %v", cat, sum.Us[cat], want)
		}
	}
	if sum.Requests != 1 || !approx(sum.TotalUs, 0.165) || sum.Goroutines != 3 || len(sum.Us) != 5 {
		t.Errorf("summary: %+v", sum)
	}
	r := h.Report(paths)
	for _, line := range []string{
		"Requests followed: 1; mean critical path inside the server 0.2 µs through 3.0 goroutines.",
		"| kernel: system call fsync | 0.1 | 61 % |",
		"| Go code: server: server.(*Node).run | 0.0 | 6 % |",
		"| Go code: gRPC transport (connection reader, loopy writer): google.golang.org/grpc.(*Server).handleRawConn.func1 | 0.0 | 5 % |",
		"| scheduler: runnable, waiting for a CPU (or after yielding it) | 0.0 | 13 % |",
	} {
		if !strings.Contains(r, line) {
			t.Errorf("report lacks %q:\n%s", line, r)
		}
	}
}

func TestWalkRefusesPathsNotStartedByTheNetwork(t *testing.T) {
	// The reader slept on a timer, not on its connection.
	if got, tally := oneRequest("sleep").Paths("server.respond"); len(got) != 0 || tally.Refused["woken by the runtime, not the network"] != 1 {
		t.Errorf("a timer's wake-up started %d paths (%s)", len(got), tally)
	}
	// The trace began while the worker was already busy.
	h := oneRequest("network")
	h.trans[worker] = append([]transition{tr(0, trace.GoUndetermined, trace.GoRunning, trace.NoGoroutine, "", nil)}, h.trans[worker][3:]...)
	if got, tally := h.Paths("server.respond"); len(got) != 0 || tally.Refused["began before the trace"] != 1 {
		t.Errorf("a path through the trace's start: %+v (%s)", got, tally)
	}
	// The worker took the request without being woken: its last wake-up
	// came from the responder during the earlier response's write.
	h = oneRequest("network")
	h.trans[responder] = append([]transition{
		tr(-20, trace.GoRunning, trace.GoSyscall, responder, "", writeStack),
		tr(-10, trace.GoSyscall, trace.GoRunning, responder, "", nil),
	}, h.trans[responder]...)
	h.trans[worker] = []transition{
		tr(-30, trace.GoRunning, trace.GoWaiting, worker, "chan receive", nil),
		tr(-5, trace.GoWaiting, trace.GoRunnable, responder, "", nil),
		tr(-4, trace.GoRunnable, trace.GoRunning, trace.NoGoroutine, "", nil),
		tr(35, trace.GoRunning, trace.GoSyscall, worker, "", fsyncStack),
		tr(135, trace.GoSyscall, trace.GoRunning, worker, "", nil),
	}
	got, tally := h.Paths("server.respond")
	if len(got) != 0 || tally.Writes != 2 || tally.Refused["crosses an earlier response"] != 1 || tally.Refused["no wake-up in the trace"] != 1 {
		t.Errorf("paths through an earlier response: %+v (%s)", got, tally)
	}
	if want := "2 response writes; without a path: crosses an earlier response 1, no wake-up in the trace 1"; tally.String() != want {
		t.Errorf("tally %q, want %q", tally, want)
	}
}
