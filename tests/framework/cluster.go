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
	var initial []string
	for i := range members {
		mopts := opts
		mopts.Name = fmt.Sprintf("m%d", i)
		if opts.MemberOptions != nil {
			mopts.ExtraArgs = append([]string(nil), opts.ExtraArgs...)
			opts.MemberOptions(i, &mopts)
		}
		members[i] = newMember(t, mopts, bin, dir)
		initial = append(initial, members[i].Name+"="+members[i].PeerURL)
	}
	for _, m := range members {
		m.setArgs(strings.Join(initial, ","))
		t.Cleanup(m.cleanup)
		if err := m.spawn(); err != nil {
			t.Fatalf("start %s: %v", m.Name, err)
		}
	}
	for _, m := range members {
		if m.opts.NoWait {
			continue
		}
		if err := m.waitReady(); err != nil {
			t.Fatalf("start %s: %v", m.Name, err)
		}
	}
	return members
}
