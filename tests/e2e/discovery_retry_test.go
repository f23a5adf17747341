package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

// TestV3DiscoveryServiceDownAtFirst: the discovery service is down when
// the members start. As etcd, they do not give up: each logs "retry
// connecting to discovery service" and backs off; once the service is back
// (same address, the size still under the token) they register, find each
// other and bootstrap one cluster.
func TestV3DiscoveryServiceDownAtFirst(t *testing.T) {
	svc := framework.Start(t, framework.Options{Name: "disc"})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const token = "disc-down-at-first"
	_, err := svc.Client().Put(ctx, "/_etcd/registry/"+token+"/_config/size", "2")
	check(t, "put the cluster size", err)
	svc.Stop()

	ms := framework.StartCluster(t, 2, framework.Options{NoInitialCluster: true, NoWait: true, ExtraArgs: []string{
		"--discovery-endpoints", strings.TrimPrefix(svc.ClientURL, "http://"), "--discovery-token", token,
		"--discovery-dial-timeout", "500ms", "--discovery-request-timeout", "1s",
	}})
	const retryLine = "retry connecting to discovery service"
	for _, m := range ms {
		check(t, m.Name+" logs a retry of the unreachable discovery service", framework.WaitFor(60*time.Second, 100*time.Millisecond,
			func() (bool, error) {
				if !m.Running() {
					return false, fmt.Errorf("gave up on the unreachable discovery service (%v):\n%s", m.ExitError(), m.Logs())
				}
				return strings.Contains(m.Logs(), retryLine), nil
			}))
		if strings.Contains(m.Logs(), framework.ReadyLine) {
			t.Fatalf("%s serves without its cluster:\n%s", m.Name, m.Logs())
		}
	}

	svc.StartAgain()
	// The next retry comes at most one back-off (a few seconds) later.
	for _, m := range ms {
		check(t, m.Name+" serves once the discovery service is back", framework.WaitFor(60*time.Second, 100*time.Millisecond, func() (bool, error) {
			if !m.Running() {
				return false, m.ExitError()
			}
			return strings.Contains(m.Logs(), framework.ReadyLine), nil
		}))
	}
	for _, m := range ms {
		if !strings.Contains(m.Logs(), "discovery joined cluster successfully") {
			t.Errorf("%s did not log etcd's \"discovery joined cluster successfully\"", m.Name)
		}
	}
	mustPut(t, ms[0].Client(), ctx, "formed", "after-retry")
	if got := mustGet(t, ms[1].Client(), ctx, "formed"); len(got.Kvs) != 1 {
		t.Errorf("a write on one member is not visible on the other")
	}
	ml, err := ms[1].Client().MemberList(ctx)
	check(t, "member list", err)
	if len(ml.Members) != 2 {
		t.Errorf("the cluster has %d members, want 2: %v", len(ml.Members), ml.Members)
	}
	regs := mustGet(t, svc.Client(), ctx, "/_etcd/registry/"+token+"/members/", clientv3.WithPrefix())
	if len(regs.Kvs) != 2 {
		t.Errorf("%d members registered, want 2", len(regs.Kvs))
	}
}

// TestV3DiscoveryRetryEndsOnSIGTERM: a member retrying an unreachable
// discovery service stops on SIGTERM during a back-off (8 s here; up to
// 256 s later), without serving.
func TestV3DiscoveryRetryEndsOnSIGTERM(t *testing.T) {
	dead, err := framework.FreePort() // nothing listens there
	check(t, "a port for the unreachable service", err)
	m := startDiscoveryMember(t, fmt.Sprintf("127.0.0.1:%d", dead), "disc-retry-sigterm",
		"--discovery-dial-timeout", "500ms", "--discovery-request-timeout", "500ms")
	// The third retry is followed by an 8 s back-off: SIGTERM lands in it.
	check(t, "d0 retries the unreachable service three times", framework.WaitFor(60*time.Second, 50*time.Millisecond, func() (bool, error) {
		return strings.Count(m.out.String(), "retry connecting to discovery service") >= 3, nil
	}))
	m.sigtermWithin(t, 5*time.Second, "a member in its discovery back-off")
	if strings.Contains(m.out.String(), framework.ReadyLine) {
		t.Errorf("the member served:\n%s", m.out.String())
	}
}

// discoveryMember is a member started by hand, on free ports, with
// --discovery-endpoints and --discovery-token; it is killed at cleanup.
type discoveryMember struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{} // closed once the process is reaped
}

func startDiscoveryMember(t *testing.T, endpoint, token string, extra ...string) *discoveryMember {
	t.Helper()
	cport, err := framework.FreePort()
	check(t, "client port", err)
	pport, err := framework.FreePort()
	check(t, "peer port", err)
	curl, purl := fmt.Sprintf("http://127.0.0.1:%d", cport), fmt.Sprintf("http://127.0.0.1:%d", pport)
	args := append([]string{"--name", "d0", "--data-dir", t.TempDir() + "/data",
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--discovery-endpoints", endpoint, "--discovery-token", token}, extra...)
	m := &discoveryMember{cmd: exec.Command(framework.ServerBinary(t), args...), out: &syncBuffer{}, exited: make(chan struct{})}
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	check(t, "start d0", m.cmd.Start())
	go func() {
		_ = m.cmd.Wait()
		close(m.exited)
	}()
	t.Cleanup(func() {
		_ = m.cmd.Process.Kill()
		<-m.exited
	})
	return m
}

// sigtermWithin sends SIGTERM and fails the test unless the member exits
// within d; what names the member's state in the failure.
func (m *discoveryMember) sigtermWithin(t *testing.T, d time.Duration, what string) {
	t.Helper()
	check(t, "SIGTERM", m.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-m.exited:
	case <-time.After(d):
		t.Fatalf("%s was still running %v after SIGTERM:\n%s", what, d, m.out.String())
	}
}
