package discovery

import (
	"context"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/metastore/metastore/internal/config"
)

func TestMemberInitialClusterFromSRV(t *testing.T) {
	m := Member{
		SRV: "example.test", SRVTimeout: time.Minute, Name: "me",
		AdvertisePeerURLs: []url.URL{{Scheme: "http", Host: "10.0.0.1:2380"}},
		Resolver:          fakeDNS{"etcd-server": {{Target: "a.test.", Port: 2380}, {Target: "b.test.", Port: 2380}}},
	}
	if !m.Configured() {
		t.Fatal("SRV discovery not seen as configured")
	}
	got, err := m.InitialCluster(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"me": {"http://a.test:2380"}, "0": {"http://b.test:2380"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	m.Resolver = fakeDNS{"etcd-server": {{Target: "b.test.", Port: 2380}}}
	if _, err := m.InitialCluster(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "DNS SRV discovery: ") {
		t.Fatalf("member missing from the records: err %v", err)
	}
	if (Member{}).Configured() {
		t.Fatal("no discovery flag, yet configured")
	}
}

func TestFromFlags(t *testing.T) {
	c, err := config.Parse([]string{"--name", "m2", "--discovery-srv", "example.test", "--discovery-srv-name", "prod",
		"--discovery-request-timeout", "3s", "--initial-cluster-token", "tok",
		"--initial-advertise-peer-urls", "http://10.0.0.2:2380"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := FromFlags(c, nil)
	if !m.Configured() || m.SRV != "example.test" || m.SRVName != "prod" || m.SRVTimeout != 3*time.Second ||
		m.Name != "m2" || m.ClusterToken != "tok" || len(m.AdvertisePeerURLs) != 1 {
		t.Fatalf("member %+v", m)
	}
}
