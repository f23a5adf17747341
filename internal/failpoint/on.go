//go:build failpoints

package failpoint

import (
	"errors"
	"fmt"
	"time"

	gofail "go.etcd.io/gofail/runtime"
)

// Enabled reports whether this binary was built with failpoints.
const Enabled = true

// points maps each name to its gofail failpoint. It is filled once, at
// package initialisation, and only read afterwards; gofail's runtime guards
// each failpoint's terms itself.
var points = register()

func register() map[string]*gofail.Failpoint {
	m := make(map[string]*gofail.Failpoint, len(Names()))
	for _, n := range Names() {
		m[n] = gofail.NewFailpoint(n)
	}
	return m
}

// Inject evaluates the failpoint's terms: a `panic` term panics here, on the
// caller's goroutine, and a `sleep` term blocks it. The panic names the
// failpoint ("failpoint raftBeforeSave: failpoint panic: {}"): gofail's own
// message does not when the term has no value, and a test that killed a
// member at a failpoint checks the member's log for it.
func Inject(name string) {
	eval(name, point(name))
}

// point is the declared failpoint name; an undeclared one is a bug.
func point(name string) *gofail.Failpoint {
	fp, ok := points[name]
	if !ok {
		panic(fmt.Sprintf("failpoint: %q is not declared in names.go", name))
	}
	return fp
}

// eval evaluates fp's terms once and returns the value of a `return` term
// (nil for none), with Inject's panics.
func eval(name string, fp *gofail.Failpoint) any {
	defer func() {
		if r := recover(); r != nil {
			panic(NewCrash(name, r))
		}
	}()
	v, err := fp.Acquire()
	if err != nil && !errors.Is(err, gofail.ErrDisabled) {
		panic(fmt.Sprintf("failpoint %s: %v", name, err))
	}
	return v
}

// holdPoll is how often Hold looks at the failpoint's terms again.
const holdPoll = 10 * time.Millisecond

// Hold is Inject for a step a test wants to keep under way while it looks
// at the member (gofail v0.2.0 has no term that blocks until released): as
// long as the failpoint's term returns a value (`return(true)`), Hold
// waits, looking again every holdPoll, for at most max; once the term is
// deleted, off or spent (`2*return(true)`), it returns. Other terms act as
// in Inject. A test thus sees the step held for exactly as long as it
// wants, instead of a sleep of a guessed length.
func Hold(name string, max time.Duration) {
	fp := point(name)
	deadline := time.Now().Add(max)
	for eval(name, fp) != nil && time.Now().Before(deadline) {
		time.Sleep(holdPoll)
	}
}
