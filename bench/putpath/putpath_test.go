package putpath

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	rtrace "runtime/trace"
	"strings"
	"testing"
)

// responseWrite is the test server's response write, the end of a request's
// path (as grpc-go's loopy writer is a real server's).
func responseWrite(c net.Conn, b byte) error {
	_, err := c.Write([]byte{b})
	return err
}

// A toy server under an execution trace: a reader goroutine woken by the
// network hands each request to a worker that writes and fsyncs a file,
// which hands it to a responder that writes the reply. Every request's
// path must be found, pass through those three goroutines, account for its
// whole duration without gaps, and show the fsync as kernel time.
func TestPathsFollowEachRequestThroughItsGoroutines(t *testing.T) {
	const requests = 30
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	toWorker, toResponder := make(chan byte), make(chan byte)
	done := make(chan struct{})
	go func() { // reader
		defer close(toWorker)
		b := make([]byte, 1)
		for {
			if _, err := srv.Read(b); err != nil {
				return
			}
			toWorker <- b[0]
		}
	}()
	go func() { // worker
		defer close(toResponder)
		for b := range toWorker {
			if _, err := f.Write([]byte{b}); err != nil {
				t.Error(err)
			}
			if err := f.Sync(); err != nil {
				t.Error(err)
			}
			toResponder <- b
		}
	}()
	go func() { // responder
		defer close(done)
		for b := range toResponder {
			if err := responseWrite(srv, b); err != nil {
				t.Error(err)
			}
		}
	}()
	reply := make([]byte, 1)
	request := func(i int) {
		t.Helper()
		if _, err := cli.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Read(reply); err != nil {
			t.Fatal(err)
		}
	}
	// A warm-up request first: a goroutine's first piece of work is not
	// a wake-up but its creation, as a long-running server's never are.
	request(0)
	var buf bytes.Buffer
	if err := rtrace.Start(&buf); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= requests; i++ {
		request(i)
	}
	rtrace.Stop()
	cli.Close()
	<-done
	srv.Close()

	h, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	paths, tally := h.Paths("putpath.responseWrite")
	// Each request's path is found unless a goroutine was still busy with
	// the one before when it arrived (then it took the work without being
	// woken, and the walk refuses a path through an earlier response), or
	// the trace began inside it (the first). On a loaded machine that
	// happens now and then, not for half of them.
	if len(paths) < requests/2 || len(paths) > requests {
		t.Fatalf("found %d request paths of %d requests (%s)", len(paths), requests, tally)
	}
	if tally.Writes < len(paths) {
		t.Errorf("tally of %d writes for %d paths", tally.Writes, len(paths))
	}
	for i, p := range paths {
		if p.goroutines != 3 {
			t.Errorf("path %d passes through %d goroutines, want 3 (reader, worker, responder)", i, p.goroutines)
		}
		var sum, fsync int64
		for _, s := range p.stretches {
			sum += s.ns
			if s.what == "syscall fsync" || s.what == "syscall fdatasync" {
				fsync += s.ns
			}
		}
		if sum != p.ns {
			t.Errorf("path %d: stretches sum to %d ns, the path lasts %d ns", i, sum, p.ns)
		}
		if fsync <= 0 {
			t.Errorf("path %d: no fsync on the path: %+v", i, p.stretches)
		}
	}
	r := h.Report(paths)
	for _, want := range []string{"Requests followed: ", "| kernel: system call fsync |", "| kernel: system call write |"} {
		if !strings.Contains(r, want) {
			t.Errorf("report lacks %q:\n%s", want, r)
		}
	}
	// A marker no write has on its stack finds nothing.
	if got, tally := h.Paths("no such function"); len(got) != 0 || tally.Writes != 0 {
		t.Errorf("found %d paths for a marker on no stack", len(got))
	}
}

func TestSyscallNameSkipsTheGenericEntry(t *testing.T) {
	for _, c := range []struct {
		stack []string
		want  string
	}{
		{[]string{"internal/runtime/syscall/linux.Syscall6", "syscall.Syscall", "syscall.write", "internal/poll.(*FD).Write"}, "write"},
		{[]string{"syscall.Syscall", "golang.org/x/sys/unix.Fdatasync", "github.com/cockroachdb/pebble/v2/vfs.(*linuxFile).SyncData"}, "fdatasync"},
		{[]string{"runtime.futex"}, "other"},
	} {
		if got := syscallName(c.stack); got != c.want {
			t.Errorf("syscallName(%q) = %q, want %q", c.stack, got, c.want)
		}
	}
	if role("google.golang.org/grpc.(*Server).serverWorker") == role("google.golang.org/grpc/internal/transport.(*loopyWriter).run") {
		t.Error("the handler's worker and the transport share a role")
	}
}
