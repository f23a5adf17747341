package transport

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestLocalAddrChoice: the first advertised peer URL whose host is an IP
// address neither loopback nor unspecified, as etcd chooses; none, and
// the kernel chooses (with etcd's warning).
func TestLocalAddrChoice(t *testing.T) {
	parse := func(ss ...string) []url.URL {
		var out []url.URL
		for _, s := range ss {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, *u)
		}
		return out
	}
	for _, tc := range []struct {
		urls []url.URL
		want string
	}{
		{parse("http://127.0.0.1:2380", "http://member1.example:2380", "https://0.0.0.0:2380", "http://10.0.0.7:2380", "http://10.0.0.8:2380"), "10.0.0.7"},
		{parse("http://[::1]:2380", "http://[fd00::7]:2380"), "fd00::7"},
		{parse("http://127.0.0.2:2380", "http://localhost:2380"), ""},
	} {
		core, logs := observer.New(zap.InfoLevel)
		if got := LocalAddr(tc.urls, zap.New(core)); got != tc.want {
			t.Errorf("LocalAddr(%v) = %q, want %q", tc.urls, got, tc.want)
		}
		if logs.FilterMessage("searching for a suitable member local address in AdvertisePeerURLs").Len() != 1 {
			t.Errorf("LocalAddr(%v) did not log its search: %v", tc.urls, logs.All())
		}
		want := "setting member local address"
		if tc.want == "" {
			want = "unable to set a member local address due to lack of suitable local addresses"
		}
		if logs.FilterMessage(want).Len() != 1 {
			t.Errorf("LocalAddr(%v) did not log %q: %v", tc.urls, want, logs.All())
		}
	}
}

// TestDialsFromLocalAddr: with Config.LocalAddr, the peer sees this
// member's connections come from that address (127.0.0.2 here, which
// Linux routes on the loopback interface); without it, from the address
// the kernel picks (127.0.0.1).
func TestDialsFromLocalAddr(t *testing.T) {
	for _, tc := range []struct{ local, wantHost string }{{"127.0.0.2", "127.0.0.2"}, {"", "127.0.0.1"}} {
		a := newEndpoint(t, 1, 0xc1, func(c *Config) { c.LocalAddr = tc.local })
		b := newEndpoint(t, 2, 0xc1, nil)
		remote := make(chan string, 1)
		b.tr.HandleFunc("/raft/test/remote", func(w http.ResponseWriter, r *http.Request) {
			remote <- r.RemoteAddr
		})
		if err := a.tr.AddPeer(2, []string{b.url}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := a.tr.Do(ctx, 2, http.MethodGet, "/raft/test/remote", nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		host, _, err := net.SplitHostPort(<-remote)
		if err != nil {
			t.Fatal(err)
		}
		if host != tc.wantHost {
			t.Errorf("LocalAddr %q: the peer saw a connection from %s, want %s", tc.local, host, tc.wantHost)
		}
	}
}
