package framework

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// StartCluster launches n members that form one cluster through
// --initial-cluster, and waits until every one serves clients (except those
// with Options.NoWait). The members must start together: none can serve
// before a quorum is up.
func StartCluster(t testing.TB, n int, opts Options) []*Member {
	t.Helper()
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	bin := opts.Binary
	if bin == "" {
		bin = ServerBinary(t)
	}
	dir := t.TempDir()
	members := make([]*Member, n)
	for i := range members {
		mopts := opts
		mopts.Name = fmt.Sprintf("m%d", i)
		if opts.MemberOptions != nil {
			mopts.ExtraArgs = append([]string(nil), opts.ExtraArgs...)
			opts.MemberOptions(i, &mopts)
		}
		members[i] = newMember(t, mopts, bin, dir)
		t.Cleanup(members[i].cleanup)
	}
	if err := startCluster(members); err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	return members
}

// NewMember prepares a member on free ports without starting it, for a
// test that adds it to a running cluster (MemberAdd needs its peer URL
// first); start it with Join.
func NewMember(t testing.TB, opts Options) *Member {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "m0"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	bin := opts.Binary
	if bin == "" {
		bin = ServerBinary(t)
	}
	m := newMember(t, opts, bin, t.TempDir()) // TempDir registered before our cleanup, so removed after the kill
	t.Cleanup(m.cleanup)
	return m
}

// Join starts m as a new member of the cluster formed by others, with
// --initial-cluster-state=existing, and waits until it serves clients.
func (m *Member) Join(others []*Member) error {
	initial := []string{m.Name + "=" + m.PeerURL}
	for _, o := range others {
		initial = append(initial, o.Name+"="+o.PeerURL)
	}
	m.setArgs(strings.Join(initial, ","))
	for i, a := range m.args {
		if a == "--initial-cluster-state" {
			m.args[i+1] = "existing"
		}
	}
	return m.start()
}
