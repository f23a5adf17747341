package framework

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcessOptions describe a server process started outside a test (the
// benchmark harness, bench/cmd/compare): any etcd-compatible binary with
// the flags given, its output appended to LogPath.
type ProcessOptions struct {
	Bin     string
	Args    []string
	LogPath string
	// Env is added to this process's environment without ETCD_*/ETCDCTL_*
	// variables (which etcd-compatible binaries read as flags).
	Env []string
}

// Process is a running server. Unlike Member it needs no testing.TB: its
// owner stops it (Stop or Kill); it is also killed if the owner dies.
type Process struct {
	opts   ProcessOptions
	cmd    *exec.Cmd
	logOff int64
	exited chan struct{}

	mu      sync.Mutex // guards waitErr
	waitErr error      // cmd.Wait's result, set before exited closes
}

// StartProcess starts the process; WaitReady waits until it serves.
func StartProcess(opts ProcessOptions) (*Process, error) {
	logf, err := os.OpenFile(opts.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor
	st, err := logf.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat log: %w", err)
	}
	cmd := exec.Command(opts.Bin, opts.Args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = childEnv(opts.Env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec %s: %w", opts.Bin, err)
	}
	p := &Process{opts: opts, cmd: cmd, logOff: st.Size(), exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Logs returns what the process logged since it started.
func (p *Process) Logs() string {
	b, err := os.ReadFile(p.opts.LogPath)
	if err != nil || int64(len(b)) < p.logOff {
		return ""
	}
	return string(b[p.logOff:])
}

// WaitReady waits up to timeout until the process logs ReadyLine; it fails
// at once if the process exits first.
func (p *Process) WaitReady(timeout time.Duration) error {
	err := WaitFor(timeout, 100*time.Millisecond, func() (bool, error) {
		if !p.Running() {
			return false, fmt.Errorf("exited during start-up: %v", p.exitErr())
		}
		return strings.Contains(p.Logs(), ReadyLine), nil
	})
	if err != nil {
		return fmt.Errorf("%s (log %s): %w", p.opts.Bin, p.opts.LogPath, err)
	}
	return nil
}

func (p *Process) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Signal sends sig unless the process has exited.
func (p *Process) Signal(sig syscall.Signal) {
	if p.Running() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// Wait waits up to grace for the process to exit, then SIGKILLs it, and
// returns its exit status as a shell reports it (128+N if signal N ended
// it) and whether it had to be killed.
func (p *Process) Wait(grace time.Duration) (status int, killed bool) {
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		killed = true
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	return exitStatus(p.exitErr()), killed
}

// Stop sends SIGTERM and waits as Wait does.
func (p *Process) Stop(grace time.Duration) (status int, killed bool) {
	p.Signal(syscall.SIGTERM)
	return p.Wait(grace)
}

// exitStatus is err's exit status as a shell reports it.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return -1
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}
