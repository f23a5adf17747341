//go:build failpoints

package failpoint

import (
	"errors"
	"fmt"

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
	fp, ok := points[name]
	if !ok {
		panic(fmt.Sprintf("failpoint: %q is not declared in names.go", name))
	}
	defer func() {
		if r := recover(); r != nil {
			panic(PanicMessage(name, r))
		}
	}()
	if _, err := fp.Acquire(); err != nil && !errors.Is(err, gofail.ErrDisabled) {
		panic(fmt.Sprintf("failpoint %s: %v", name, err))
	}
}
