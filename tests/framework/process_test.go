package framework

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A Process started without a testing.TB (as bench/cmd/compare does) serves
// after WaitReady, stops gracefully with status 0 on SIGTERM, and reports a
// start-up failure at once instead of waiting out its timeout.
func TestProcessLifecycle(t *testing.T) {
	bin := ServerBinary(t)
	cport, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	pport, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	curl, purl := fmt.Sprintf("http://127.0.0.1:%d", cport), fmt.Sprintf("http://127.0.0.1:%d", pport)
	p, err := StartProcess(ProcessOptions{Bin: bin, LogPath: filepath.Join(dir, "log"), Args: []string{
		"--name", "p0", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "p0=" + purl,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Wait(0) })
	if err := p.WaitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !p.Running() || !strings.Contains(p.Logs(), ReadyLine) {
		t.Fatalf("ready but running %v, logs:\n%s", p.Running(), p.Logs())
	}
	if status, killed := p.Stop(30 * time.Second); status != 0 || killed {
		t.Fatalf("SIGTERM: exit status %d, killed %v\n%s", status, killed, p.Logs())
	}

	bad, err := StartProcess(ProcessOptions{Bin: bin, LogPath: filepath.Join(dir, "bad.log"), Args: []string{"--no-such-flag"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bad.Wait(0) })
	begin := time.Now()
	err = bad.WaitReady(60 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited during start-up") {
		t.Fatalf("WaitReady on a failing start: %v", err)
	}
	if took := time.Since(begin); took > 30*time.Second {
		t.Fatalf("a failed start took %v to report", took)
	}
}
