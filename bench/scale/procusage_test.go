package main

import (
	"testing"
	"time"
)

func TestParseProcUsage(t *testing.T) {
	cpu, err := parseStatCPU("4242 (meta store) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 9 0 5333419 3133440 418")
	if err != nil || cpu != 2870*time.Millisecond {
		t.Fatalf("parseStatCPU = %v, %v; want 2.87s", cpu, err)
	}
	if _, err := parseStatCPU("4242 (x) S 1 2"); err == nil {
		t.Fatal("a short stat line was accepted")
	}
	r, w, d, err := parseIO("rchar: 6976\nwchar: 512\nsyscr: 10\nsyscw: 0\nread_bytes: 2048\nwrite_bytes: 4096\n")
	if err != nil || r != 6976 || w != 512 || d != 2048 {
		t.Fatalf("parseIO = %d, %d, %d, %v; want 6976, 512, 2048", r, w, d, err)
	}
	if _, _, _, err := parseIO("rchar: 1\nwchar: 2\nsyscr: 10\n"); err == nil {
		t.Fatal("io without read_bytes was accepted")
	}
	t0 := time.Unix(100, 0)
	u0 := procUsage{at: t0, cpu: time.Second, rchar: 0, wchar: 0}
	u1 := procUsage{at: t0.Add(2 * time.Second), cpu: 4 * time.Second, rchar: 400e6, wchar: 100e6}
	if got, want := u1.since(u0), "CPU 1.50 cores, read 200 MB/s, wrote 50 MB/s"; got != want {
		t.Fatalf("since = %q, want %q", got, want)
	}
	u1.device = 8 << 20
	if got, want := u1.perRequest(u0, 1000), "server per request: CPU 3000 µs, read 390.6 KiB, 8.2 KiB of it from the device"; got != want {
		t.Fatalf("perRequest = %q, want %q", got, want)
	}
	if got := u1.perRequest(u0, 0); got != "no requests" {
		t.Fatalf("perRequest of none = %q", got)
	}
}
