package main

import (
	"runtime"
	"testing"
)

func TestSyncProcsRaisesOneToTwoUnlessSet(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(orig) })
	unset := func(string) string { return "" }
	set := func(k string) string {
		if k == "GOMAXPROCS" {
			return "1"
		}
		return ""
	}
	for _, c := range []struct {
		name   string
		start  int
		getenv func(string) string
		want   int
	}{
		{"one CPU", 1, unset, 2},
		{"two CPUs", 2, unset, 2},
		{"four CPUs", 4, unset, 4},
		{"one CPU, GOMAXPROCS set", 1, set, 1},
	} {
		runtime.GOMAXPROCS(c.start)
		if got := syncProcs(c.getenv); got != c.want || runtime.GOMAXPROCS(0) != c.want {
			t.Errorf("%s: syncProcs = %d, runtime %d, want %d", c.name, got, runtime.GOMAXPROCS(0), c.want)
		}
	}
}
