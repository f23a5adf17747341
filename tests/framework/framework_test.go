package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestMemberLifecycle checks the framework itself: start, write, crash,
// start again, graceful restart, and etcdctl against the member.
func TestMemberLifecycle(t *testing.T) {
	m := Start(t, Options{})
	if !m.Running() {
		t.Fatal("member not running after Start")
	}
	c := m.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	put, err := c.Put(ctx, "k", "v1")
	if err != nil {
		t.Fatalf("put: %v", err)
	}

	m.Kill9()
	if m.Running() {
		t.Fatal("member running after Kill9")
	}
	m.StartAgain()
	get, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatalf("get after kill -9: %v", err)
	}
	if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "v1" || get.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("after kill -9 got %v, want v1 at mod rev %d", get.Kvs, put.Header.Revision)
	}

	m.Restart()
	if err := m.ExitError(); err != nil {
		t.Logf("graceful stop exit status: %v", err)
	}
	out := m.MustEtcdctl("get", "k", "--print-value-only")
	if strings.TrimSpace(out) != "v1" {
		t.Fatalf("etcdctl get after restart = %q, want v1", out)
	}
	if !strings.Contains(m.Logs(), "=== framework: starting") {
		t.Fatal("log file misses the start marker")
	}
}

func TestFreePortUnique(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

// TestStartOnTakenPort takes a new member's client port before it starts,
// with a listener that answers /health as a healthy etcd would: the
// framework must not mistake it for the member. A restart on the taken
// port fails at once with ErrPortInUse; a new member gets new ports.
func TestStartOnTakenPort(t *testing.T) {
	m := NewMember(t, Options{})
	taken := m.ClientURL
	l, err := net.Listen("tcp", strings.TrimPrefix(taken, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"health":"true","reason":""}`))
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	m.setArgs(m.Name + "=" + m.PeerURL)
	if err := m.start(); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("start on a taken client port: %v, want ErrPortInUse", err)
	}
	if err := m.freshPorts(); err != nil {
		t.Fatal(err)
	}
	// The first attempt of startNew uses the taken port again, so it must
	// choose new ports once.
	m.ClientURL = taken
	if err := m.startNew(); err != nil {
		t.Fatalf("start with new ports: %v", err)
	}
	if m.ClientURL == taken {
		t.Fatalf("member still on the taken %s", taken)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := m.Client().Status(ctx, strings.TrimPrefix(m.ClientURL, "http://"))
	if err != nil {
		t.Fatalf("status of the member on its new port: %v", err)
	}
	if st.Header.GetMemberId() == 0 {
		t.Fatalf("status without a member ID: %v", st)
	}
}

// TestClusterStartOnTakenPort takes one member's peer port before a
// three-member cluster starts: the cluster starts on new ports instead.
func TestClusterStartOnTakenPort(t *testing.T) {
	bin := ServerBinary(t)
	dir := t.TempDir()
	ms := make([]*Member, 3)
	for i := range ms {
		ms[i] = newMember(t, Options{Name: fmt.Sprintf("m%d", i), StartTimeout: 30 * time.Second}, bin, dir)
		t.Cleanup(ms[i].cleanup)
	}
	taken := ms[1].PeerURL
	l, err := net.Listen("tcp", strings.TrimPrefix(taken, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := startCluster(ms); err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	if ms[1].PeerURL == taken {
		t.Fatalf("member m1 still on the taken %s", taken)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := ms[0].Client().MemberList(ctx)
	if err != nil {
		t.Fatalf("member list: %v", err)
	}
	if len(resp.Members) != 3 {
		t.Fatalf("members = %v, want 3", resp.Members)
	}
	for _, m := range resp.Members {
		if slices.Contains(m.PeerURLs, taken) {
			t.Fatalf("member %s lists the taken peer URL %s", m.Name, taken)
		}
	}
}
