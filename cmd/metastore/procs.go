package main

import (
	"runtime"
)

// minProcs is the fewest Ps the server runs with (see syncProcs).
const minProcs = 2

// syncProcs raises GOMAXPROCS to minProcs when the runtime's default is
// lower (the server was given one CPU) and the GOMAXPROCS environment
// variable does not set it, and returns the value in force.
//
// Why: every write waits for an fdatasync of the storage engine's log
// (0.2–2 ms), done by one goroutine in a blocking system call. The Go
// runtime keeps that goroutine's P for the call's duration and hands it to
// another thread only when its monitor thread notices (after 20 µs to
// 10 ms: its poll interval backs off while nothing needs retaking). With
// GOMAXPROCS=1 nothing else of the server runs meanwhile: a put load from
// 1000 clients left 60% of the CPU idle, the requests queued runnable
// behind the sync. A second P lets the rest of the server (gRPC,
// proposals, apply) use the CPU the sync leaves idle: pinned to one CPU,
// puts from 1000 clients went from 4,350 and 3,300 to 7,300 and 6,900
// req/s (alternating runs, docs/benchmarks.md, ADR 16). With two or more
// CPUs the other Ps keep running during a sync; one more P than CPUs
// there showed no gain beyond the noise, so the default is kept.
// Setting GOMAXPROCS turns off the runtime's own updates of it when the
// CPU limit changes, so it is set only when raised; the variable, when
// set, wins.
func syncProcs(getenv func(string) string) int {
	n := runtime.GOMAXPROCS(0)
	if getenv("GOMAXPROCS") != "" || n >= minProcs {
		return n
	}
	runtime.GOMAXPROCS(minProcs)
	return minProcs
}
