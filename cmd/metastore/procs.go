package main

import (
	"runtime"
)

// syncProcs raises GOMAXPROCS by one above the runtime's default unless
// the GOMAXPROCS environment variable set it, and returns the value in
// force.
//
// Why: every write waits for an fdatasync of the storage engine's log
// (0.2–2 ms), done by one goroutine in a blocking system call. The Go
// runtime keeps that goroutine's P for the call's duration and hands it to
// another thread only when its monitor thread notices (after 20 µs to
// 10 ms, its poll interval backs off while nothing needs retaking). With
// GOMAXPROCS=1 (the server given one CPU) nothing else of the server runs
// meanwhile: a put load from 1000 clients left 60% of the CPU idle, the
// requests queued runnable behind the sync. One more P than CPUs lets the
// rest of the server (gRPC, proposals, apply) use the CPU the sync leaves
// idle: pinned to one CPU, puts from 1000 clients went from 4,350 and
// 3,300 to 7,300 and 6,900 req/s (alternating runs, docs/benchmarks.md).
// Setting GOMAXPROCS explicitly turns off the runtime's own updates of it
// when the CPU limit changes; the variable, when set, wins.
func syncProcs(getenv func(string) string) int {
	if getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	n := runtime.GOMAXPROCS(0) + 1
	runtime.GOMAXPROCS(n)
	return n
}
