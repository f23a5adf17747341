package main

import (
	"runtime"
	"testing"
)

func TestSyncProcsAddsOneUnlessSet(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(orig) })

	unset := func(string) string { return "" }
	if got := syncProcs(unset); got != orig+1 || runtime.GOMAXPROCS(0) != orig+1 {
		t.Fatalf("without GOMAXPROCS: got %d, runtime %d, want %d", got, runtime.GOMAXPROCS(0), orig+1)
	}

	runtime.GOMAXPROCS(orig)
	set := func(k string) string {
		if k == "GOMAXPROCS" {
			return "3"
		}
		return ""
	}
	if got := syncProcs(set); got != orig || runtime.GOMAXPROCS(0) != orig {
		t.Fatalf("with GOMAXPROCS set: got %d, runtime %d, want %d unchanged", got, runtime.GOMAXPROCS(0), orig)
	}
}
