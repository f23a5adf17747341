package peers

import (
	"slices"
	"testing"
	"time"

	"github.com/metastore/metastore/internal/membership"
)

type fakeTransport map[uint64][]string

func (f fakeTransport) AddPeer(id uint64, urls []string) error { f[id] = urls; return nil }
func (f fakeTransport) RemovePeer(id uint64)                   { delete(f, id) }
func (f fakeTransport) Peers() []uint64 {
	var out []uint64
	for id := range f {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func TestSyncerFollowsTheMemberList(t *testing.T) {
	tr := fakeTransport{}
	removed := 0
	var delay time.Duration
	s := New(Config{Self: 1, Transport: tr, Removed: func() { removed++ }, RemovedDelay: time.Second,
		AfterFunc: func(d time.Duration, f func()) { delay = d; f() }})
	s.Reach([]*membership.Member{{ID: 1, PeerURLs: []string{"u1"}}, {ID: 2, PeerURLs: []string{"u2"}}})
	if got := tr.Peers(); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("peers %v, want [2] (never itself)", got)
	}
	s.MemberAdded(&membership.Member{ID: 3, PeerURLs: []string{"u3"}})
	s.MemberUpdated(&membership.Member{ID: 3, PeerURLs: []string{"u3b"}})
	if tr[3][0] != "u3b" {
		t.Fatalf("peer 3 at %v after update", tr[3])
	}
	s.MemberRemoved(2)
	if got := tr.Peers(); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("peers %v after removing 2", got)
	}
	// A snapshot brought a member list without 3 and with 4.
	s.Sync([]*membership.Member{{ID: 1}, {ID: 4, PeerURLs: []string{"u4"}}})
	if got := tr.Peers(); !slices.Equal(got, []uint64{4}) {
		t.Fatalf("peers %v after sync", got)
	}
	if removed != 0 {
		t.Fatal("stopped although another member was removed")
	}
	s.MemberRemoved(1)
	if removed != 1 || delay != time.Second {
		t.Fatalf("own removal: stopped %d times after %v", removed, delay)
	}
}
