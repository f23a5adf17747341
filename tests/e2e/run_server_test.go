package e2e

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/metastore/metastore/tests/framework"
)

// syncBuffer is a bytes.Buffer written by a child process and read by the
// test at once.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runUntilOutput runs the server binary with args until it exits by
// itself or, unless waitExit, its output holds want (within 30 s), then
// kills it if it still runs. It returns the output, whether the server
// exited by itself, and its exit status then.
func runUntilOutput(t *testing.T, args []string, want string, waitExit bool) (out string, exited bool, code int) {
	t.Helper()
	cmd := exec.Command(framework.ServerBinary(t), args...)
	var buf syncBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	check(t, "start the server", cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var waitErr error
	_ = framework.WaitFor(30*time.Second, 50*time.Millisecond, func() (bool, error) {
		select {
		case waitErr = <-done:
			exited = true
			return true, nil
		default:
		}
		return !waitExit && strings.Contains(buf.String(), want), nil
	})
	if !exited {
		_ = cmd.Process.Kill()
		<-done
		return buf.String(), false, -1
	}
	var exitErr *exec.ExitError
	if errors.As(waitErr, &exitErr) {
		code = exitErr.ExitCode()
	}
	return buf.String(), true, code
}
