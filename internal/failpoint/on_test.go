//go:build failpoints

package failpoint

import (
	"strings"
	"testing"

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
