package putpath

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/exp/trace"
)

// DefaultEnd is on the stack of grpc-go's writes to a connection: its
// loopy writer goroutine writes every response (metastore and etcd alike).
const DefaultEnd = "grpc/internal/transport.(*loopyWriter)"

// maxHops bounds a backward walk: a request passes through a dozen
// goroutines at most; a longer chain is not one request's.
const maxHops = 64

// stretch is a part of a request's critical path: time one goroutine spent
// in one state.
type stretch struct {
	what string // "syscall <name>", "runnable" or "running"
	g    trace.GoID
	ns   int64
}

// Path is one request's critical path inside the server, from the
// network wake-up of the goroutine that read it to the end of the system
// call that wrote its response.
type Path struct {
	ns         int64 // end minus start
	stretches  []stretch
	goroutines int // distinct goroutines on the path
}

// Tally says what became of the response writes Paths found: how many
// there were and, for those that gave no path, why (Paths' and walk's
// reasons), so that a trace without paths can say what it held instead.
type Tally struct {
	Writes  int
	Refused map[string]int
}

func (t Tally) String() string {
	var reasons []string
	for r, n := range t.Refused {
		reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
	}
	sort.Strings(reasons)
	return fmt.Sprintf("%d response writes; without a path: %s", t.Writes, strings.Join(reasons, ", "))
}

// Paths walks back from every response write (a write system call with end
// on its stack) and keeps the walks that reach a network wake-up through
// at least three goroutines: a shorter chain (the connection's reader
// waking its writer) writes HTTP/2 control frames, not a response.
func (h *History) Paths(end string) ([]Path, Tally) {
	var out []Path
	t := Tally{Refused: map[string]int{}}
	for g, ts := range h.trans {
		for i := 0; i+1 < len(ts); i++ {
			if ts[i].to != trace.GoSyscall || !onStack(ts[i].stack, end) || !isWrite(ts[i].stack) {
				continue
			}
			t.Writes++
			p, why := h.walk(g, ts[i+1].t, end)
			switch {
			case why != "":
				t.Refused[why]++
			case p.goroutines < 3:
				t.Refused["control frames (fewer than 3 goroutines)"]++
			default:
				out = append(out, p)
			}
		}
	}
	return out, t
}

func isWrite(stack []string) bool {
	n := syscallName(stack)
	return n == "write" || n == "writev" || n == "pwrite"
}

// syscallName is the system call a goroutine's stack is in, by the
// innermost function of package syscall or golang.org/x/sys/unix.
func syscallName(stack []string) string {
	for _, f := range stack {
		for _, pkg := range []string{"syscall.", "golang.org/x/sys/unix."} {
			if strings.HasPrefix(f, pkg) {
				name := strings.ToLower(strings.TrimPrefix(f, pkg))
				if name == "syscall" || name == "syscall6" || strings.HasPrefix(name, "rawsyscall") {
					continue // the generic entry: look further out
				}
				return name
			}
		}
	}
	return "other"
}

// walk follows the critical path that ends on goroutine g at time t
// backwards: g's stretches back to the wake-up that made it runnable, then
// the goroutine that woke it, from that moment, and so on, until a wake-up
// by the network poller. It fails if the trace began inside the path, a
// wake-up came from elsewhere in the runtime (a timer), or the walk reached
// an earlier response write: a goroutine that found its work waiting
// without blocking was last woken for an earlier request, and the path
// would span both.
func (h *History) walk(g trace.GoID, t trace.Time, endOn string) (Path, string) {
	end := t
	var p Path
	writes := 0
	seen := map[trace.GoID]bool{}
	for hop := 0; hop < maxHops; hop++ {
		seen[g] = true
		ts := h.trans[g]
		i := sort.Search(len(ts), func(i int) bool { return ts[i].t > t }) - 1
		cur := t
		woken := -1
		for ; i >= 0; i-- {
			tr := ts[i]
			if tr.from == trace.GoUndetermined {
				return Path{}, "began before the trace"
			}
			if tr.to == trace.GoSyscall && onStack(tr.stack, endOn) && isWrite(tr.stack) {
				if writes++; writes > 1 {
					return Path{}, "crosses an earlier response"
				}
			}
			if d := int64(cur - tr.t); d > 0 {
				p.stretches = append(p.stretches, stretch{what: stateName(tr), g: g, ns: d})
			}
			cur = tr.t
			if tr.to == trace.GoRunnable && (tr.from == trace.GoWaiting || tr.from == trace.GoNotExist) {
				woken = i
				break
			}
		}
		if woken < 0 {
			return Path{}, "no wake-up in the trace"
		}
		tr := ts[woken]
		if tr.by == trace.NoGoroutine {
			if woken > 0 && ts[woken-1].to == trace.GoWaiting && strings.Contains(ts[woken-1].reason, "network") {
				p.ns = int64(end - tr.t)
				p.goroutines = len(seen)
				return p, ""
			}
			return Path{}, "woken by the runtime, not the network"
		}
		g, t = tr.by, tr.t
	}
	return Path{}, "longer than maxHops"
}

// stateName names the state a transition entered, for the stretch after it.
func stateName(tr transition) string {
	switch tr.to {
	case trace.GoSyscall:
		return "syscall " + syscallName(tr.stack)
	case trace.GoRunnable:
		return "runnable"
	case trace.GoRunning:
		return "running"
	}
	return tr.to.String()
}

// The roles of goroutines, by their start function.
const (
	roleHandler = "request handler (gRPC's worker running the server's handler)"
	roleGRPC    = "gRPC transport (connection reader, loopy writer)"
	roleRaft    = "raft"
	roleStorage = "storage engine"
	roleServer  = "server"
	roleUnknown = "unknown"
)

// role groups goroutines by their start function.
func role(start string) string {
	switch {
	case strings.Contains(start, "grpc.(*Server).serverWorker"), strings.Contains(start, "grpc.(*Server).serveStreams"):
		return roleHandler
	case strings.HasPrefix(start, "google.golang.org/grpc"), strings.HasPrefix(start, "golang.org/x/net/http2"):
		return roleGRPC
	case strings.HasPrefix(start, "go.etcd.io/raft"):
		return roleRaft
	case strings.HasPrefix(start, "github.com/cockroachdb/pebble"), strings.HasPrefix(start, "go.etcd.io/bbolt"):
		return roleStorage
	case start == "":
		return roleUnknown
	}
	return roleServer
}

// ErrNoPath says a trace held no request path.
var ErrNoPath = errors.New("no request path found (is the trace of a server answering one client's requests one at a time, and is the end marker on the stack of its response writes?)")
