package bootstrap

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/storage/memory"
)

func newStore(t *testing.T) (*memory.Engine, *membership.Store) {
	t.Helper()
	eng := memory.New()
	ms, err := membership.Load(eng)
	if err != nil {
		t.Fatal(err)
	}
	return eng, ms
}

var threeMembers = map[string][]string{
	"m1": {"http://127.0.0.1:1"},
	"m2": {"http://127.0.0.1:2"},
	"m3": {"http://127.0.0.1:3"},
}

func TestNewClusterIdentityIsTheSameOnEveryMember(t *testing.T) {
	var ids []uint64
	var clusterIDs []uint64
	var peerOrders [][]uint64
	for _, name := range []string{"m1", "m2", "m3"} {
		eng, ms := newStore(t)
		res, err := Run(Config{Engine: eng, Members: ms, Name: name, InitialMembers: threeMembers, Token: "tok"})
		if err != nil {
			t.Fatal(err)
		}
		if want := membership.ComputeMemberID(threeMembers[name], "tok"); res.MemberID != want {
			t.Fatalf("%s: member ID %x, want %x", name, res.MemberID, want)
		}
		got, ok, err := membership.ReadLocalID(eng)
		if err != nil || !ok || got != res.MemberID {
			t.Fatalf("%s: recorded ID %x %v %v, want %x", name, got, ok, err, res.MemberID)
		}
		if len(res.Peers) != 3 || len(res.Reach) != 3 {
			t.Fatalf("%s: %d peers, %d to reach, want 3", name, len(res.Peers), len(res.Reach))
		}
		var order []uint64
		for _, p := range res.Peers {
			order = append(order, p.ID)
		}
		ids = append(ids, res.MemberID)
		clusterIDs = append(clusterIDs, ms.ClusterID())
		peerOrders = append(peerOrders, order)
	}
	if ids[0] == ids[1] || ids[1] == ids[2] {
		t.Fatalf("member IDs not distinct: %x", ids)
	}
	for i := range clusterIDs {
		if clusterIDs[i] != clusterIDs[0] || clusterIDs[i] == 0 {
			t.Fatalf("cluster IDs differ: %x", clusterIDs)
		}
		for j := range peerOrders[i] {
			if peerOrders[i][j] != peerOrders[0][j] {
				t.Fatalf("bootstrap peers differ between members: %x", peerOrders)
			}
			if j > 0 && peerOrders[i][j-1] >= peerOrders[i][j] {
				t.Fatalf("bootstrap peers not in ID order: %x", peerOrders[i])
			}
		}
	}
}

func TestRestartReadsTheRecordedIdentity(t *testing.T) {
	eng, ms := newStore(t)
	first, err := Run(Config{Engine: eng, Members: ms, Name: "m1", InitialMembers: threeMembers})
	if err != nil {
		t.Fatal(err)
	}
	ms2, err := membership.Load(eng)
	if err != nil {
		t.Fatal(err)
	}
	// A restart ignores --initial-cluster, even one that no longer names it.
	again, err := Run(Config{Engine: eng, Members: ms2, Name: "other", InitialMembers: map[string][]string{"x": {"http://127.0.0.1:9"}}})
	if err != nil {
		t.Fatal(err)
	}
	if again.MemberID != first.MemberID || again.Peers != nil || ms2.ClusterID() != ms.ClusterID() {
		t.Fatalf("restart: %+v cluster %x, want member %x and no bootstrap peers", again, ms2.ClusterID(), first.MemberID)
	}
}

func TestNewClusterMustNameThisMember(t *testing.T) {
	eng, ms := newStore(t)
	_, err := Run(Config{Engine: eng, Members: ms, Name: "m9", InitialMembers: threeMembers})
	if err == nil || !strings.Contains(err.Error(), "does not name this member") {
		t.Fatalf("err = %v", err)
	}
	if _, ok, _ := membership.ReadLocalID(eng); ok {
		t.Fatal("a refused bootstrap recorded an identity")
	}
}

// servedCluster is a cluster of two members (m1 and the learner m4 at
// http://127.0.0.1:4) served on a peer's /raft/members route; seen, if
// not nil, gets every request's remote address.
func servedCluster(t *testing.T, seen chan<- string) *httptest.Server {
	t.Helper()
	// The cluster: a store holding two members, served as a peer would.
	ceng, cms := newStore(t)
	added := &membership.Member{ID: 0xabc, PeerURLs: []string{"http://127.0.0.1:4"}, IsLearner: true}
	b := ceng.NewBatch()
	for _, m := range []*membership.Member{{ID: 0x111, Name: "m1", PeerURLs: []string{"http://127.0.0.1:1"}}, added} {
		if err := membership.StagePut(b, m); err != nil {
			t.Fatal(err)
		}
		cms.Put(m)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := cms.RecordIdentity(ceng, 0x111, 0xc1); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	serve := ServeMembers(cms)
	mux.HandleFunc("/raft/members", func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			seen <- r.RemoteAddr
		}
		serve(w, r)
	})
	peer := httptest.NewServer(mux)
	t.Cleanup(peer.Close)
	return peer
}

func TestJoinTakesTheIDTheClusterGaveItsPeerURLs(t *testing.T) {
	peer := servedCluster(t, nil)

	eng, ms := newStore(t)
	cfg := Config{Engine: eng, Members: ms, Name: "m4", Join: true,
		InitialMembers:    map[string][]string{"m1": {peer.URL}, "m4": {"http://127.0.0.1:4"}},
		AdvertisePeerURLs: []string{"http://127.0.0.1:4"}}
	res, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.MemberID != 0xabc || ms.ClusterID() != 0xc1 || res.Peers != nil || len(res.Reach) != 2 {
		t.Fatalf("join: %+v cluster %x", res, ms.ClusterID())
	}

	// A member the cluster does not know is told to be added first.
	eng2, ms2 := newStore(t)
	cfg.Engine, cfg.Members, cfg.AdvertisePeerURLs = eng2, ms2, []string{"http://127.0.0.1:5"}
	if _, err := Run(cfg); err == nil || !strings.Contains(err.Error(), "member add") {
		t.Fatalf("unknown joiner: err = %v", err)
	}
}

// With SetMemberLocalAddr a joining member fetches the cluster from its
// peers from the chosen local address, as its Raft connections will.
func TestJoinDialsFromPeerLocalAddr(t *testing.T) {
	seen := make(chan string, 4)
	peer := servedCluster(t, seen)
	eng, ms := newStore(t)
	cfg := Config{Engine: eng, Members: ms, Name: "m4", Join: true,
		InitialMembers:    map[string][]string{"m1": {peer.URL}, "m4": {"http://127.0.0.1:4"}},
		AdvertisePeerURLs: []string{"http://127.0.0.1:4"},
		PeerLocalAddr:     &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	if _, err := Run(cfg); err != nil {
		t.Fatal(err)
	}
	host, _, err := net.SplitHostPort(<-seen)
	if err != nil {
		t.Fatal(err)
	}
	if host != "127.0.0.2" {
		t.Fatalf("the peer saw the member list fetched from %s, want 127.0.0.2", host)
	}
}

func TestForceNewClusterIgnoresAFreshDataDir(t *testing.T) {
	eng, _ := newStore(t)
	if err := ForceNewCluster(eng, "dir", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := membership.ReadLocalID(eng); ok {
		t.Fatal("ForceNewCluster recorded an identity on a fresh data dir")
	}
}

type recordingProposer struct{ reqs []*pb.InternalRaftRequest }

func (p *recordingProposer) Propose(_ context.Context, r *pb.InternalRaftRequest) (apply.Result, error) {
	p.reqs = append(p.reqs, r)
	return apply.Result{}, nil
}

func TestPublishProposesOnlyWhatChanged(t *testing.T) {
	_, ms := newStore(t)
	ms.Put(&membership.Member{ID: 7, Name: "m7", PeerURLs: []string{"http://127.0.0.1:7"}, ClientURLs: []string{"http://127.0.0.1:17"}})
	p := &recordingProposer{}
	if err := Publish(context.Background(), p, ms, 7, "m7", []string{"http://127.0.0.1:17"}); err != nil {
		t.Fatal(err)
	}
	if len(p.reqs) != 0 {
		t.Fatalf("proposed %v although nothing changed", p.reqs)
	}
	if err := Publish(context.Background(), p, ms, 7, "m7", []string{"http://127.0.0.1:27"}); err != nil {
		t.Fatal(err)
	}
	if len(p.reqs) != 1 {
		t.Fatalf("%d proposals, want 1", len(p.reqs))
	}
	a := p.reqs[0].GetClusterMemberAttrSet()
	if a.GetMember_ID() != 7 || a.GetMemberAttributes().GetName() != "m7" || a.GetMemberAttributes().GetClientUrls()[0] != "http://127.0.0.1:27" {
		t.Fatalf("proposed %v", a)
	}
}
