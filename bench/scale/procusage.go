package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procUsage is what the kernel has counted for a process so far: its CPU
// time, the bytes it read and wrote through system calls, and the bytes
// those reads fetched from the storage device (a read served from the page
// cache counts in rchar only). The compaction phase reports the rates
// before and during the compaction: on a shared machine the p99s move with
// every other job, while the server's own CPU and I/O say what the
// compaction cost it. The latency phase reports them per request, which
// tells a read served from memory from one that waited for the disk.
type procUsage struct {
	at           time.Time
	cpu          time.Duration
	rchar, wchar int64
	device       int64 // read_bytes
}

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

func readUsage(pid int) (procUsage, error) {
	u := procUsage{at: time.Now()}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	if u.cpu, err = parseStatCPU(string(st)); err != nil {
		return u, err
	}
	io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return u, err
	}
	u.rchar, u.wchar, u.device, err = parseIO(string(io))
	return u, err
}

// parseStatCPU returns utime+stime of a /proc/<pid>/stat line. The command
// name (field 2) may hold spaces and parentheses, so fields are counted
// from the last ')'.
func parseStatCPU(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat line without a command name: %q", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat line with %d fields after the command name", len(f))
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat cpu time %q: %w", v, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// parseIO returns rchar, wchar and read_bytes of /proc/<pid>/io.
func parseIO(s string) (rchar, wchar, readBytes int64, err error) {
	fields := map[string]*int64{"rchar": &rchar, "wchar": &wchar, "read_bytes": &readBytes}
	found := 0
	for _, l := range strings.Split(s, "\n") {
		name, v, ok := strings.Cut(l, ":")
		p := fields[name]
		if !ok || p == nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("io %s %q: %w", name, v, err)
		}
		*p = n
		found++
	}
	if found != len(fields) {
		return 0, 0, 0, fmt.Errorf("no rchar, wchar and read_bytes in %q", s)
	}
	return rchar, wchar, readBytes, nil
}

// since renders the usage from u0 to u as rates: cores of CPU, MB/s read
// and written.
func (u procUsage) since(u0 procUsage) string {
	d := u.at.Sub(u0.at).Seconds()
	if d <= 0 {
		return "no interval"
	}
	return fmt.Sprintf("CPU %.2f cores, read %.0f MB/s, wrote %.0f MB/s",
		(u.cpu-u0.cpu).Seconds()/d, float64(u.rchar-u0.rchar)/1e6/d, float64(u.wchar-u0.wchar)/1e6/d)
}

// perRequest renders the usage from u0 to u divided among n requests: the
// server's CPU, the bytes its read calls returned and the bytes they
// fetched from the device, per request.
func (u procUsage) perRequest(u0 procUsage, n int) string {
	if n <= 0 {
		return "no requests"
	}
	f := float64(n)
	return fmt.Sprintf("server per request: CPU %.0f µs, read %.1f KiB, %.1f KiB of it from the device",
		float64((u.cpu-u0.cpu).Microseconds())/f, float64(u.rchar-u0.rchar)/1024/f, float64(u.device-u0.device)/1024/f)
}
