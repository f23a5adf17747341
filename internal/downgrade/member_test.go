package downgrade

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"

	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/peerapi"
	"github.com/metastore/metastore/internal/storage/memory"
	"github.com/metastore/metastore/internal/version"
)

// peerVersions answers PathVersion for each peer as its handler would;
// a peer missing from the map is unreachable.
type peerVersions map[uint64]http.HandlerFunc

func (p peerVersions) Do(_ context.Context, id uint64, method, path string, _ []byte) (*http.Response, error) {
	h, ok := p[id]
	if !ok {
		return nil, errors.New("unreachable")
	}
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(method, path, nil))
	return rec.Result(), nil
}

func answer(v string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != peerapi.PathVersion {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, v)
	}
}

var pbDowngradeEnable = membershippb.DowngradeInfoSetRequest{Enabled: true, Ver: "3.6.0"}

type threeMembers struct{}

func (threeMembers) Members() []*membership.Member {
	return []*membership.Member{{ID: 1}, {ID: 2}, {ID: 3}}
}

type proposals struct{ got []*pb.InternalRaftRequest }

func (p *proposals) LinearizableBarrier(context.Context) error { return nil }
func (p *proposals) Propose(_ context.Context, r *pb.InternalRaftRequest) error {
	p.got = append(p.got, r)
	return nil
}

func TestMemberVersions(t *testing.T) {
	cases := []struct {
		name  string
		peers peerVersions
		want  map[uint64]string
	}{
		{"every peer answers", peerVersions{2: answer("3.6.0"), 3: ServeVersion},
			map[uint64]string{1: version.EtcdAPIVersion, 2: "3.6.0", 3: version.EtcdAPIVersion}},
		{"a peer is down", peerVersions{2: answer("3.6.0")}, nil},
		{"a peer refuses", peerVersions{2: answer("3.6.0"), 3: func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "no", http.StatusInternalServerError)
		}}, nil},
	}
	for _, c := range cases {
		mc := NewMemberCluster(MemberConfig{Self: 1, Members: threeMembers{}, Peers: c.peers})
		got, ok := mc.MemberVersions(context.Background())
		if ok != (c.want != nil) || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v %v, want %v", c.name, got, ok, c.want)
		}
	}
}

func TestMemberClusterFinishAndState(t *testing.T) {
	eng := memory.New()
	b := eng.NewBatch()
	if err := Stage(b, &pbDowngradeEnable); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	p := &proposals{}
	mc := NewMemberCluster(MemberConfig{Self: 1, IsLeader: func() bool { return true }, State: eng, Proposer: p})
	if in, err := mc.State(); err != nil || !in.Enabled || in.Target != pbDowngradeEnable.Ver || !mc.IsLeader() {
		t.Fatalf("state %+v %v", in, err)
	}
	if err := mc.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(p.got) != 1 || p.got[0].DowngradeInfoSet == nil || p.got[0].DowngradeInfoSet.Enabled {
		t.Fatalf("proposed %v, want one DowngradeInfoSet disabling", p.got)
	}
	srv := WithStatusInfo(statusOnly{}, eng)
	resp, err := srv.Status(context.Background(), &pb.StatusRequest{})
	if err != nil || !resp.DowngradeInfo.GetEnabled() || !strings.HasPrefix(resp.DowngradeInfo.GetTargetVersion(), "3.") {
		t.Fatalf("status %v %v", resp, err)
	}
}

type statusOnly struct{ pb.MaintenanceServer }

func (statusOnly) Status(context.Context, *pb.StatusRequest) (*pb.StatusResponse, error) {
	return &pb.StatusResponse{}, nil
}
