package framework

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// StartCluster launches n members that form one cluster through
// --initial-cluster, and waits until every one serves clients. The members
// must start together: none can serve before a quorum is up.
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
		cp, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		pp, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("m%d", i)
		mopts := opts
		mopts.Name = name
		members[i] = &Member{
			t: t, opts: mopts, bin: bin, Name: name,
			DataDir:   filepath.Join(dir, name+".data"),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", cp),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", pp),
			LogPath:   filepath.Join(dir, name+".log"),
		}
		initial = append(initial, name+"="+members[i].PeerURL)
	}
	for _, m := range members {
		m.args = append([]string{
			"--name", m.Name,
			"--data-dir", m.DataDir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL,
			"--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
		}, opts.ExtraArgs...)
		t.Cleanup(m.cleanup)
		if err := m.spawn(); err != nil {
			t.Fatalf("start %s: %v", m.Name, err)
		}
	}
	for _, m := range members {
		if err := m.waitReady(); err != nil {
			t.Fatalf("start %s: %v", m.Name, err)
		}
	}
	return members
}
