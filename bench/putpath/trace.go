package putpath

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/exp/trace"
)

// transition is one state change of a goroutine.
type transition struct {
	t        trace.Time
	from, to trace.GoState
	by       trace.GoID // the goroutine running when it happened (NoGoroutine: the runtime, e.g. the network poller)
	reason   string
	stack    []string // into a system call: the goroutine's stack at the call, innermost first
}

// History is every goroutine's transitions, in time order, and the function
// each goroutine started in (or the outermost one seen, for goroutines that
// existed before the trace began).
type History struct {
	trans map[trace.GoID][]transition
	start map[trace.GoID]string
}

// Read reads an execution trace (runtime/trace's format, as served at
// /debug/pprof/trace) into a History.
func Read(r io.Reader) (*History, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, err
	}
	h := &History{trans: map[trace.GoID][]transition{}, start: map[trace.GoID]string{}}
	for {
		ev, err := tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			return h, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read trace: %w", err)
		}
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		g := st.Resource.Goroutine()
		if _, ok := h.start[g]; !ok {
			if f := outermost(st.Stack); f != "" {
				h.start[g] = f
			}
		}
		if by := ev.Goroutine(); by != trace.NoGoroutine {
			if _, ok := h.start[by]; !ok {
				if f := outermost(ev.Stack()); f != "" {
					h.start[by] = f
				}
			}
		}
		from, to := st.Goroutine()
		tr := transition{t: ev.Time(), from: from, to: to, by: ev.Goroutine(), reason: st.Reason}
		if to == trace.GoSyscall {
			// Only a system call's stack is read (its name, whether it
			// writes a response); a trace holds millions of transitions.
			tr.stack = funcs(ev.Stack())
		}
		h.trans[g] = append(h.trans[g], tr)
	}
}

func funcs(s trace.Stack) []string {
	var out []string
	for f := range s.Frames() {
		out = append(out, f.Func)
	}
	return out
}

func outermost(s trace.Stack) string {
	fs := funcs(s)
	if len(fs) == 0 {
		return ""
	}
	return fs[len(fs)-1]
}

// onStack reports whether a function containing sub is on stack.
func onStack(stack []string, sub string) bool {
	for _, f := range stack {
		if strings.Contains(f, sub) {
			return true
		}
	}
	return false
}
