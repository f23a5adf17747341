package discovery

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
)

type fakeDNS map[string][]*net.SRV // service → records

func (f fakeDNS) LookupSRV(_ context.Context, service, _, _ string) (string, []*net.SRV, error) {
	if rs, ok := f[service]; ok {
		return "", rs, nil
	}
	return "", nil, errors.New("no such host")
}

func (f fakeDNS) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	switch host {
	case "a.test":
		return []net.IPAddr{{IP: net.ParseIP("10.0.0.1")}}, nil
	case "b.test":
		return []net.IPAddr{{IP: net.ParseIP("10.0.0.2")}}, nil
	}
	return nil, errors.New("no such host")
}

func TestSRVCluster(t *testing.T) {
	self := []url.URL{{Scheme: "http", Host: "10.0.0.1:2380"}}
	recs := []*net.SRV{{Target: "a.test.", Port: 2380}, {Target: "b.test.", Port: 2380}}
	for _, tc := range []struct {
		name, suffix string
		dns          fakeDNS
		want, err    string
	}{
		{"http records", "", fakeDNS{"etcd-server": recs}, "me=http://a.test:2380,0=http://b.test:2380", ""},
		{"suffix", "prod", fakeDNS{"etcd-server-prod": recs}, "me=http://a.test:2380,0=http://b.test:2380", ""},
		{"not among the records", "", fakeDNS{"etcd-server": recs[1:]}, "", `cannot find local etcd member "me" in SRV records`},
		{"scheme mismatch", "", fakeDNS{"etcd-server-ssl": recs}, "", "scheme mismatch"},
		{"no records", "", fakeDNS{}, "", "error querying DNS SRV records for _etcd-server-ssl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SRVCluster(context.Background(), tc.dns, "example.test", tc.suffix, "me", self)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
