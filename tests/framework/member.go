package framework

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ReadyLine is what etcd (and so metastore) logs once it serves clients;
// etcd's own e2e framework waits for the same text.
const ReadyLine = "ready to serve client requests"

// Options configures a member. The zero value starts a single-member
// cluster named "m0" on free ports.
type Options struct {
	Name string
	// ExtraArgs are appended after the generated flags.
	ExtraArgs []string
	// Env is added to the server's environment ("KEY=VALUE").
	Env []string
	// StartTimeout bounds every wait for readiness; default 30s.
	StartTimeout time.Duration
	// Binary overrides the server binary (default ServerBinary).
	Binary string
	// ExtraListenClientURLs are served besides ClientURL (unix:// sockets,
	// say); ClientURL stays the one the framework's clients use.
	ExtraListenClientURLs []string
	// ClientScheme and PeerScheme are "http" (the default) or "https"; with
	// https the certificate flags go in ExtraArgs.
	ClientScheme, PeerScheme string
	// ClientTLS is what Client uses to reach an https ClientURL.
	ClientTLS *tls.Config
	// MemberOptions, for StartCluster, adjusts the options of member i
	// (its own certificate, say) before it is created.
	MemberOptions func(i int, o *Options)
	// NoWait makes StartCluster start the member without waiting for it to
	// serve (a member expected never to join, say).
	NoWait bool
	// NoInitialCluster leaves out --initial-cluster and
	// --initial-cluster-state, for members that find their cluster by
	// discovery (ExtraArgs then carries the --discovery-* flags).
	NoInitialCluster bool
	// PeerProxy puts a PeerProxy (peerproxy.go) in front of the member's
	// peer listener: PeerURL, which the member advertises, is the proxy's.
	PeerProxy bool
}

// Member is one server process and its data dir, which survives restarts.
type Member struct {
	t       testing.TB
	opts    Options
	bin     string
	args    []string
	Name    string
	DataDir string
	// ClientURL and PeerURL are http://127.0.0.1:PORT (or https, see
	// Options.ClientScheme and PeerScheme).
	ClientURL string
	PeerURL   string
	LogPath   string
	// Proxy is the member's peer proxy with Options.PeerProxy, else nil;
	// the member listens for peers on peerListenURL behind it.
	Proxy         *PeerProxy
	peerListenURL string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	exitErr error
	logOff  int64 // size of the log when the current process started
	// outOff is the size, when the current process started, of each file
	// its --log-outputs names (its log then goes there, not to LogPath).
	outOff  map[string]int64
	clients []*clientv3.Client
}

// Start launches a member and waits until it serves clients. It is stopped
// with SIGKILL in t.Cleanup, whatever the outcome of the test.
func Start(t testing.TB, opts Options) *Member {
	t.Helper()
	m := NewMember(t, opts)
	if err := m.startNew(); err != nil {
		t.Fatalf("start %s: %v", m.Name, err)
	}
	return m
}

// startNew starts a new single-member cluster. If another process took
// one of its ports before the member bound it (ErrPortInUse), the member
// never served: it gets new ports and an empty data dir and starts again,
// at most portAttempts times in all. That is port allocation, not a retry
// of the test: nothing of the failed start is kept or was observed.
func (m *Member) startNew() error {
	for attempt := 1; ; attempt++ {
		m.setArgs(m.Name + "=" + m.PeerURL)
		err := m.start()
		if err == nil || !errors.Is(err, ErrPortInUse) || attempt == portAttempts {
			return err
		}
		m.t.Logf("start %s: a port was taken by another process (%v); choosing new ports", m.Name, m.exitError())
		if err := m.freshPorts(); err != nil {
			return err
		}
	}
}

// portAttempts bounds how often a new member gets new ports after another
// process took the ones it was given (ErrPortInUse).
const portAttempts = 3

// ErrPortInUse is returned when a member exits before serving because a
// port it was told to listen on is taken ("address already in use").
var ErrPortInUse = errors.New("a port of the member is taken by another process")

// freshPorts gives a member that never served new client and peer ports
// and an empty data dir, for a new start after ErrPortInUse.
func (m *Member) freshPorts() error {
	clientPort, err := FreePort()
	if err != nil {
		return err
	}
	peerPort, err := FreePort()
	if err != nil {
		return err
	}
	m.ClientURL = fmt.Sprintf("%s://127.0.0.1:%d", urlScheme(m.opts.ClientScheme), clientPort)
	if err := m.setPeerPort(peerPort); err != nil {
		return err
	}
	if err := os.RemoveAll(m.DataDir); err != nil {
		return fmt.Errorf("remove the data dir of the failed start: %w", err)
	}
	return nil
}

func urlScheme(s string) string {
	if s == "" {
		return "http"
	}
	return s
}

// newMember prepares (but does not start) a member with free ports and its
// data dir and log under dir.
func newMember(t testing.TB, opts Options, bin, dir string) *Member {
	t.Helper()
	clientPort, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	peerPort, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	m := &Member{
		t:         t,
		opts:      opts,
		bin:       bin,
		Name:      opts.Name,
		DataDir:   filepath.Join(dir, opts.Name+".data"),
		ClientURL: fmt.Sprintf("%s://127.0.0.1:%d", urlScheme(opts.ClientScheme), clientPort),
		LogPath:   filepath.Join(dir, opts.Name+".log"),
	}
	if err := m.setPeerPort(peerPort); err != nil {
		t.Fatal(err)
	}
	return m
}

// setPeerPort makes peerPort the member's advertised peer port. With
// Options.PeerProxy, a new PeerProxy listens there (replacing an earlier
// one) and forwards to the member's own peer listener on another free port.
func (m *Member) setPeerPort(peerPort int) error {
	scheme := urlScheme(m.opts.PeerScheme)
	m.PeerURL = fmt.Sprintf("%s://127.0.0.1:%d", scheme, peerPort)
	m.peerListenURL = m.PeerURL
	if !m.opts.PeerProxy {
		return nil
	}
	listenPort, err := FreePort()
	if err != nil {
		return err
	}
	proxy, err := NewPeerProxy(fmt.Sprintf("127.0.0.1:%d", peerPort), fmt.Sprintf("127.0.0.1:%d", listenPort))
	if err != nil {
		return err
	}
	if m.Proxy != nil {
		m.Proxy.Close()
	}
	m.Proxy = proxy
	m.t.Cleanup(proxy.Close)
	m.peerListenURL = fmt.Sprintf("%s://127.0.0.1:%d", scheme, listenPort)
	return nil
}

// setArgs sets the etcd-style command line for joining initialCluster.
func (m *Member) setArgs(initialCluster string) {
	m.args = []string{
		"--name", m.Name,
		"--data-dir", m.DataDir,
		"--listen-client-urls", strings.Join(append([]string{m.ClientURL}, m.opts.ExtraListenClientURLs...), ","),
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.peerListenURL,
		"--initial-advertise-peer-urls", m.PeerURL,
	}
	if !m.opts.NoInitialCluster {
		m.args = append(m.args, "--initial-cluster", initialCluster, "--initial-cluster-state", "new")
	}
	m.args = append(m.args, m.opts.ExtraArgs...)
}

// Args returns the command line flags the member is started with.
func (m *Member) Args() []string { return append([]string(nil), m.args...) }

func (m *Member) start() error {
	begin := time.Now()
	if err := m.spawn(); err != nil {
		return err
	}
	if err := m.waitReady(); err != nil {
		return err
	}
	m.t.Logf("member %s serving on %s after %v", m.Name, m.ClientURL, time.Since(begin).Round(time.Millisecond))
	return nil
}

func (m *Member) spawn() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		select {
		case <-m.exited: // it exited by itself (a failed start, say)
		default:
			return errors.New("already running")
		}
	}
	logf, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor
	st, err := logf.Stat()
	if err != nil {
		return fmt.Errorf("stat log: %w", err)
	}
	m.logOff = st.Size() // readiness is searched only in this run's output
	m.outOff = map[string]int64{}
	for _, f := range logOutputFiles(m.args) {
		var size int64
		if st, err := os.Stat(f); err == nil {
			size = st.Size()
		}
		m.outOff[f] = size
	}
	fmt.Fprintf(logf, "=== framework: starting %s %s\n", m.bin, strings.Join(m.args, " "))

	cmd := exec.Command(m.bin, m.args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = childEnv(m.opts.Env)
	// If the test binary dies (timeout, SIGKILL) the server must not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", m.bin, err)
	}
	m.cmd = cmd
	m.exitErr = nil
	exited := make(chan struct{})
	m.exited = exited
	go func() {
		err := cmd.Wait()
		m.mu.Lock()
		m.exitErr = err
		m.mu.Unlock()
		close(exited)
	}()
	return nil
}

// childEnv is the test's environment without ETCD_*/ETCDCTL_* variables,
// which etcd-compatible binaries read as flags, plus extra.
func childEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ETCD_") || strings.HasPrefix(kv, "ETCDCTL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// waitReady waits until this member's own process logs ReadyLine, failing
// at once if the process exits first. Nothing reachable on the member's
// ports counts: another process may hold them (see ErrPortInUse).
func (m *Member) waitReady() error {
	return waitAllReady([]*Member{m})
}

// waitAllReady waits until every member's process logged ReadyLine, failing
// as soon as one exits.
func waitAllReady(ms []*Member) error {
	deadline := time.Now()
	for _, m := range ms {
		deadline = maxTime(deadline, time.Now().Add(m.opts.StartTimeout))
	}
	ready := make([]bool, len(ms))
	var failed *Member
	err := pollUntil(deadline, 50*time.Millisecond, func() (bool, error) {
		all := true
		for i, m := range ms {
			if ready[i] {
				continue
			}
			ok, err := m.readyNow()
			if err != nil {
				failed = m
				return false, err
			}
			ready[i] = ok
			all = all && ok
		}
		return all, nil
	})
	if err != nil {
		if failed == nil {
			for i, m := range ms {
				if !ready[i] {
					failed = m
					break
				}
			}
		}
		return fmt.Errorf("waiting for %s to log %q (serving %s): %w\n%s", failed.Name, ReadyLine, failed.ClientURL, err,
			tail(failed.logsSinceStart(), 8<<10))
	}
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// readyNow reports whether the member's process logged ReadyLine, or why
// it cannot any more (it exited).
func (m *Member) readyNow() (bool, error) {
	m.mu.Lock()
	exited := m.exited
	m.mu.Unlock()
	select {
	case <-exited:
		// Read the log after the exit: it then holds all the process wrote.
		if strings.Contains(m.logsSinceStart(), "address already in use") {
			return false, fmt.Errorf("process exited before serving: %v: %w", m.exitError(), ErrPortInUse)
		}
		return false, fmt.Errorf("process exited before serving: %v", m.exitError())
	default:
	}
	if strings.Contains(m.logsSinceStart(), ReadyLine) {
		return true, nil
	}
	m.mu.Lock()
	outs := maps.Clone(m.outOff)
	m.mu.Unlock()
	for f, off := range outs {
		if b, err := os.ReadFile(f); err == nil && int64(len(b)) >= off && strings.Contains(string(b[off:]), ReadyLine) {
			return true, nil
		}
	}
	return false, nil
}

// logOutputFiles returns the files a member's --log-outputs names (not
// stdout, stderr or default): the member then logs its ready line there.
func logOutputFiles(args []string) []string {
	var vals []string
	for i, a := range args {
		switch {
		case a == "--log-outputs" && i+1 < len(args):
			vals = append(vals, args[i+1])
		case strings.HasPrefix(a, "--log-outputs="):
			vals = append(vals, strings.TrimPrefix(a, "--log-outputs="))
		}
	}
	var files []string
	for _, v := range vals {
		for _, f := range strings.Split(v, ",") {
			if f != "" && f != "stdout" && f != "stderr" && f != "default" {
				files = append(files, f)
			}
		}
	}
	return files
}

// startCluster starts new members that form one cluster through
// --initial-cluster and waits until those without NoWait serve. If another
// process took a port of one of them first (ErrPortInUse), no member can
// have served a client: all are killed and get new ports and empty data
// dirs, and the cluster starts again, at most portAttempts times in all
// (port allocation, as in startNew).
func startCluster(ms []*Member) error {
	for attempt := 1; ; attempt++ {
		var initial []string
		for _, m := range ms {
			initial = append(initial, m.Name+"="+m.PeerURL)
		}
		var wait []*Member
		var err error
		for _, m := range ms {
			m.setArgs(strings.Join(initial, ","))
			if err = m.spawn(); err != nil {
				return fmt.Errorf("start %s: %w", m.Name, err)
			}
			if !m.opts.NoWait {
				wait = append(wait, m)
			}
		}
		err = waitAllReady(wait)
		if err == nil || !errors.Is(err, ErrPortInUse) || attempt == portAttempts {
			return err
		}
		ms[0].t.Logf("start cluster: a port was taken by another process; choosing new ports for every member")
		for _, m := range ms {
			if err := m.signalAndWait(syscall.SIGKILL, 10*time.Second); err != nil {
				return fmt.Errorf("kill %s after the failed start: %w", m.Name, err)
			}
			if err := m.freshPorts(); err != nil {
				return err
			}
		}
	}
}

// WaitFor polls an external process: it calls f every interval until f
// reports done, returns an error, or timeout passes.
func WaitFor(timeout, interval time.Duration, f func() (bool, error)) error {
	return pollUntil(time.Now().Add(timeout), interval, f)
}

// pollUntil calls f every interval until it reports done, returns an error,
// or the deadline passes. Only for waiting on external processes.
func pollUntil(deadline time.Time, interval time.Duration, f func() (bool, error)) error {
	for {
		done, err := f()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(interval)
	}
}

func (m *Member) exitError() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exitErr
}

// Logs returns everything the member printed, across restarts.
func (m *Member) Logs() string {
	b, _ := os.ReadFile(m.LogPath)
	return string(b)
}

func (m *Member) logsSinceStart() string {
	b, _ := os.ReadFile(m.LogPath)
	m.mu.Lock()
	off := m.logOff
	m.mu.Unlock()
	if off > int64(len(b)) {
		off = 0
	}
	return string(b[off:])
}

// warnings returns the lines of a member's log at level warn or above.
func warnings(log string) string {
	var b strings.Builder
	for line := range strings.Lines(log) {
		if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) ||
			strings.Contains(line, `"level":"panic"`) || strings.Contains(line, `"level":"fatal"`) ||
			strings.HasPrefix(line, "panic:") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

// Running reports whether the process is alive.
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// Kill9 kills the process with SIGKILL (a crash) and waits for it to die.
func (m *Member) Kill9() {
	m.t.Helper()
	if err := m.signalAndWait(syscall.SIGKILL, 10*time.Second); err != nil {
		m.t.Fatalf("kill -9 %s: %v", m.Name, err)
	}
}

// Stop sends SIGTERM and waits (up to 20s) for a graceful exit; a server
// that does not exit in time is killed and the test fails.
func (m *Member) Stop() {
	m.t.Helper()
	begin := time.Now()
	defer func() {
		m.t.Logf("member %s stopped (SIGTERM) in %v", m.Name, time.Since(begin).Round(time.Millisecond))
	}()
	if err := m.signalAndWait(syscall.SIGTERM, 20*time.Second); err != nil {
		_ = m.signalAndWait(syscall.SIGKILL, 10*time.Second)
		m.t.Fatalf("stop %s: %v", m.Name, err)
	}
}

// ExitError returns the error of the last process exit (nil for status 0).
func (m *Member) ExitError() error { return m.exitError() }

func (m *Member) signalAndWait(sig syscall.Signal, timeout time.Duration) error {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
	default:
		if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("signal %v: %w", sig, err)
		}
		select {
		case <-exited:
		case <-time.After(timeout):
			return fmt.Errorf("still running %v after %v", timeout, sig)
		}
	}
	m.mu.Lock()
	m.cmd = nil
	m.mu.Unlock()
	return nil
}

// Restart stops the member gracefully if it runs, then starts it again on
// the same ports and data dir and waits until it serves.
func (m *Member) Restart() {
	m.t.Helper()
	m.Stop()
	if err := m.start(); err != nil {
		m.t.Fatalf("restart %s: %v", m.Name, err)
	}
}

// StartAgain starts a stopped or killed member (same ports and data dir)
// and waits until it serves.
func (m *Member) StartAgain() {
	m.t.Helper()
	if err := m.start(); err != nil {
		m.t.Fatalf("start %s again: %v", m.Name, err)
	}
}

// StartAgainWith starts a stopped or killed member with extra replacing the
// ExtraArgs it was started with (same ports and data dir).
func (m *Member) StartAgainWith(extra ...string) {
	m.t.Helper()
	base := m.args[:len(m.args)-len(m.opts.ExtraArgs)]
	m.opts.ExtraArgs = extra
	m.args = append(append([]string(nil), base...), extra...)
	m.StartAgain()
}

// Pid is the server's process ID, or 0 when it is not running.
func (m *Member) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

func (m *Member) cleanup() {
	m.mu.Lock()
	clients := m.clients
	m.clients = nil
	m.mu.Unlock()
	for _, c := range clients {
		_ = c.Close()
	}
	if err := m.signalAndWait(syscall.SIGKILL, 10*time.Second); err != nil {
		m.t.Errorf("cleanup %s: %v", m.Name, err)
	}
	if m.t.Failed() {
		// Routine info lines (a compaction every few hundred ms) can fill
		// any tail: the warnings and errors come first, on their own.
		logs := m.Logs()
		m.t.Logf("=== warnings and errors of member %s, last 8 KiB:\n%s", m.Name, tail(warnings(logs), 8<<10))
		m.t.Logf("=== log of member %s (%s), last 16 KiB:\n%s", m.Name, m.LogPath, tail(logs, 16<<10))
	}
}

// Client returns a clientv3 client for the member, closed at test cleanup.
// It keeps working across restarts (it reconnects).
func (m *Member) Client() *clientv3.Client {
	m.t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.ClientURL},
		DialTimeout: 5 * time.Second,
		TLS:         m.opts.ClientTLS,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		m.t.Fatalf("clientv3 for %s: %v", m.Name, err)
	}
	m.mu.Lock()
	m.clients = append(m.clients, c)
	m.mu.Unlock()
	return c
}

// EtcdctlResult is the outcome of one etcdctl run.
type EtcdctlResult struct {
	Stdout, Stderr string
	Err            error // non-nil if etcdctl failed to run or exited non-zero
}

// Etcdctl runs the real etcdctl against the member (--endpoints set) and
// returns its output; a non-zero exit is reported in Err, not as a failure.
func (m *Member) Etcdctl(args ...string) EtcdctlResult {
	m.t.Helper()
	return m.EtcdctlStdin("", args...)
}

// EtcdctlStdin is Etcdctl with the given text on standard input.
func (m *Member) EtcdctlStdin(stdin string, args ...string) EtcdctlResult {
	m.t.Helper()
	return m.EtcdctlTimeout(time.Minute, stdin, args...)
}

// EtcdctlTimeout is EtcdctlStdin with a bound other than the default minute
// on how long etcdctl may run before it is killed.
func (m *Member) EtcdctlTimeout(timeout time.Duration, stdin string, args ...string) EtcdctlResult {
	m.t.Helper()
	bin := Tool(m.t, "etcdctl")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--endpoints=" + m.ClientURL}, args...)...)
	cmd.Env = childEnv(nil)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("etcdctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return EtcdctlResult{Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
}

// MustEtcdctl runs etcdctl and fails the test if it exits non-zero.
func (m *Member) MustEtcdctl(args ...string) string {
	m.t.Helper()
	r := m.Etcdctl(args...)
	if r.Err != nil {
		m.t.Fatal(r.Err)
	}
	return r.Stdout
}

// HTTPGet fetches path (e.g. "/health") from the client URL.
func (m *Member) HTTPGet(path string) (status int, body string, err error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(m.ClientURL + path)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", fmt.Errorf("GET %s: read body: %w", path, err)
	}
	return resp.StatusCode, string(b), nil
}
