//go:build failpoints

package failpoint

import (
	"strings"
	"testing"
	"time"

	gofail "go.etcd.io/gofail/runtime"
)

func TestInjectRunsGofailTerms(t *testing.T) {
	Inject(RaftBeforeSave) // disabled: nothing happens
	if err := gofail.Enable(RaftBeforeSave, "1*panic"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gofail.Disable(RaftBeforeSave) })
	func() {
		defer func() {
			r := recover()
			if r == nil {
				t.Fatal("Inject did not panic with the panic term set")
			}
			if s, _ := r.(string); !strings.HasPrefix(s, "failpoint raftBeforeSave: ") {
				t.Fatalf("panic value %q does not name the failpoint", r)
			}
		}()
		Inject(RaftBeforeSave)
	}()
	Inject(RaftBeforeSave) // 1*panic: spent
	if len(gofail.List()) < len(Names()) {
		t.Fatalf("gofail lists %v, want every name of Names()", gofail.List())
	}
}

func TestInjectUnknownNamePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Inject of an undeclared name did not panic")
		}
	}()
	Inject("noSuchFailpoint")
}

func TestHoldWaitsWhileTheTermReturns(t *testing.T) {
	Hold(DefragBeforeCopy, time.Minute) // disabled: returns at once
	if err := gofail.Enable(DefragBeforeCopy, "return(true)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gofail.Disable(DefragBeforeCopy) })
	released := make(chan struct{})
	go func() {
		defer close(released)
		Hold(DefragBeforeCopy, time.Minute)
	}()
	// Held: it must not return while the term is set. Check it is still
	// held after it has looked at the term several times.
	for range 5 {
		select {
		case <-released:
			t.Fatal("Hold returned while its term still returns a value")
		case <-time.After(holdPoll):
		}
	}
	if err := gofail.Disable(DefragBeforeCopy); err != nil {
		t.Fatal(err)
	}
	select {
	case <-released:
	case <-time.After(30 * time.Second):
		t.Fatal("Hold still waiting 30 s after its term was deleted")
	}
	// The bound: a term left set is let go after max.
	if err := gofail.Enable(DefragBeforeCopy, "return(true)"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	Hold(DefragBeforeCopy, 50*time.Millisecond)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("Hold returned after %v, before its bound", d)
	}
}
