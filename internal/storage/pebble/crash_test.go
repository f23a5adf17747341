package pebble

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/metastore/metastore/internal/storage"
)

// Environment of the child process in TestCrashKeepsAcknowledgedBatches.
const (
	crashDirEnv    = "METASTORE_PEBBLE_CRASH_DIR"
	crashNoSyncEnv = "METASTORE_PEBBLE_CRASH_NOSYNC"
)

const crashWriters = 4

// TestCrashKeepsAcknowledgedBatches is the foundation of "nothing
// acknowledged is ever lost": a child process commits synced batches from
// several goroutines and prints each acknowledged index; the parent kills it
// with SIGKILL mid-stream, reopens the store and checks that every
// acknowledged batch is there, whole.
//
// With NoSync the same must hold: a SIGKILL is a process crash, and the
// no-fsync mode still hands each synced batch to the kernel before
// acknowledging it. (Only a machine crash may lose those.)
func TestCrashKeepsAcknowledgedBatches(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir, os.Getenv(crashNoSyncEnv) != "")
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoSync=%v", noSync), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			acked := runCrashChild(t, dir, noSync, 400)
			e := openAt(t, dir, Options{NoSync: noSync, CacheSize: 8 << 20})
			for i := range acked {
				for _, prefix := range []string{"a/", "b/"} {
					k := fmt.Sprintf("%s%08d", prefix, i)
					v, err := e.Get([]byte(k))
					if err != nil {
						t.Fatalf("acknowledged batch %d lost (%s): %v", i, k, err)
					}
					if string(v) != strconv.Itoa(i) {
						t.Fatalf("%s = %q, want %d", k, v, i)
					}
				}
			}
			// Batches that were never acknowledged may or may not be there,
			// but never in part.
			it, err := e.NewIter(storage.IterOptions{LowerBound: []byte("a/"), UpperBound: []byte("a0")})
			if err != nil {
				t.Fatal(err)
			}
			defer it.Close()
			n := 0
			for ok := it.First(); ok; ok = it.Next() {
				n++
				k := "b/" + string(it.Key()[2:])
				if _, err := e.Get([]byte(k)); err != nil {
					t.Fatalf("torn batch: %s present, %s: %v", it.Key(), k, err)
				}
			}
			t.Logf("%d batches acknowledged before SIGKILL, %d recovered", len(acked), n)
		})
	}
}

// runCrashChild runs the child until it has acknowledged at least want
// batches, SIGKILLs it and returns every index it acknowledged.
func runCrashChild(t *testing.T, dir string, noSync bool, want int) map[int]bool {
	t.Helper()
	env := []string{crashDirEnv + "=" + dir}
	if noSync {
		env = append(env, crashNoSyncEnv+"=1")
	}
	cmd, stdout, stderr := startChild(t, "TestCrashKeepsAcknowledgedBatches", env...)

	acked := map[int]bool{}
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		idx, ok := strings.CutPrefix(line, "ack ")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(idx)
		if err != nil {
			t.Fatalf("bad child line %q", line)
		}
		acked[i] = true
		if len(acked) >= want && !killed {
			// Lines already in the pipe were acknowledged too; keep reading
			// them after the kill.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !killed || !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended without our SIGKILL (acked %d): %v\nstderr:\n%s", len(acked), err, stderr.String())
	}
	return acked
}

// crashChild commits synced batches until killed (or a bound is hit) and
// prints "ack <index>" after each commit returns. Each batch writes two
// keys, so that the parent can detect a torn batch. A small memtable makes
// flushes and WAL rotations happen during the run.
func crashChild(dir string, noSync bool) {
	e, err := Open(dir, Options{NoSync: noSync, CacheSize: 8 << 20, MemTableSize: 256 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(30 * time.Second)
	pad := strings.Repeat("x", 512)
	for w := range crashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 1_000_000 && time.Now().Before(deadline); i += crashWriters {
				b := e.NewBatch()
				v := []byte(strconv.Itoa(i))
				_ = b.Set(fmt.Appendf(nil, "a/%08d", i), v)
				_ = b.Set(fmt.Appendf(nil, "pad/%08d", i), []byte(pad))
				_ = b.Set(fmt.Appendf(nil, "b/%08d", i), v)
				if err := b.Commit(true); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				_ = b.Close()
				out.Lock()
				fmt.Fprintf(os.Stdout, "ack %d\n", i)
				out.Unlock()
			}
		}()
	}
	wg.Wait()
	os.Exit(3) // never acknowledged enough to be killed
}

// startChild re-runs this test binary for the single test name, with env
// added, and returns it with its stdout and the buffer collecting its
// stderr. A watchdog kills a child still running after 60s, so that a hung
// child cannot hang the test.
func startChild(t *testing.T, name string, env ...string) (*exec.Cmd, io.Reader, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watchdog := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	t.Cleanup(func() { watchdog.Stop() })
	return cmd, stdout, stderr
}
