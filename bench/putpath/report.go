package putpath

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/exp/trace"
)

// row is one line of the report: a kind of stretch and its mean time per
// request.
type row struct {
	label string
	ns    int64
}

// Report sums the paths' stretches by kind (system calls by name, waits
// for a CPU, Go code by the running goroutine's role and start function)
// and shows each as a mean per request and a share of the path.
func (h *History) Report(paths []Path) string {
	var total, hops int64
	sums := map[string]int64{}
	for _, p := range paths {
		total += p.ns
		hops += int64(p.goroutines)
		for _, s := range p.stretches {
			sums[label(s, h.start)] += s.ns
		}
	}
	var rows []row
	for l, ns := range sums {
		rows = append(rows, row{l, ns})
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].ns != rows[j].ns {
			return rows[i].ns > rows[j].ns
		}
		return rows[i].label < rows[j].label
	})
	n := int64(len(paths))
	var b strings.Builder
	fmt.Fprintf(&b, "Requests followed: %d; mean critical path inside the server %.1f µs through %.1f goroutines.\n\n",
		n, float64(total)/float64(n)/1e3, float64(hops)/float64(n))
	b.WriteString("| on the critical path | mean per request (µs) | share |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %.1f | %.0f %% |\n", r.label, float64(r.ns)/float64(n)/1e3, 100*float64(r.ns)/float64(total))
	}
	return b.String()
}

// label names the kind of a stretch: the kernel's (a system call), the
// scheduler's (a runnable goroutine without a CPU) or Go code, by the
// role and start function of the goroutine that ran it.
func label(s stretch, start map[trace.GoID]string) string {
	switch {
	case strings.HasPrefix(s.what, "syscall "):
		return "kernel: system call " + strings.TrimPrefix(s.what, "syscall ")
	case s.what == "runnable":
		return "scheduler: runnable, waiting for a CPU (or after yielding it)"
	case s.what == "running":
		f := start[s.g]
		if f == "" {
			f = "start unknown"
		}
		return "Go code: " + role(f) + ": " + f
	}
	return "other: " + s.what
}

// The coarse categories of Summary, in the order a table shows them.
const (
	CatSync    = "kernel: fdatasync / fsync"
	CatWrite   = "kernel: writes (files and sockets)"
	CatSyscall = "kernel: other system calls (socket reads, ...)"
	CatSched   = "scheduler: runnable, waiting for a CPU"
	CatGRPC    = "Go code: gRPC's transport goroutines"
	CatHandler = "Go code: request handler goroutines (gRPC + the server's handler)"
	CatRaft    = "Go code: raft's goroutines"
	CatStorage = "Go code: storage engine goroutines"
	CatServer  = "Go code: the server's own goroutines"
)

// Categories are Summary's categories in table order.
var Categories = []string{CatSync, CatWrite, CatSyscall, CatSched, CatGRPC, CatHandler, CatRaft, CatStorage, CatServer}

// Summary is the paths' means: per request, the path's length, its
// goroutines and its time in each category (Categories), in microseconds.
type Summary struct {
	Requests   int
	TotalUs    float64
	Goroutines float64
	Us         map[string]float64
}

// Summarize sums paths by coarse category (Categories).
func (h *History) Summarize(paths []Path) Summary {
	s := Summary{Requests: len(paths), Us: map[string]float64{}}
	if len(paths) == 0 {
		return s
	}
	n := float64(len(paths))
	for _, p := range paths {
		s.TotalUs += float64(p.ns) / 1e3 / n
		s.Goroutines += float64(p.goroutines) / n
		for _, st := range p.stretches {
			s.Us[category(st, h.start)] += float64(st.ns) / 1e3 / n
		}
	}
	return s
}

func category(s stretch, start map[trace.GoID]string) string {
	switch {
	case strings.HasPrefix(s.what, "syscall "):
		switch strings.TrimPrefix(s.what, "syscall ") {
		case "fdatasync", "fsync", "syncfilerange":
			return CatSync
		case "write", "pwrite", "writev":
			return CatWrite
		}
		return CatSyscall
	case s.what == "runnable":
		return CatSched
	}
	switch role(start[s.g]) {
	case roleGRPC:
		return CatGRPC
	case roleHandler:
		return CatHandler
	case roleRaft:
		return CatRaft
	case roleStorage:
		return CatStorage
	}
	// The server's own, and goroutines whose start the trace did not show
	// (none in the servers' traces so far): counting those as the server's
	// errs against the server, the side a comparison should err on.
	return CatServer
}
