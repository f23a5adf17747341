package tlsflags

import (
	"errors"
	"net"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/tlsutil"
)

func parse(t *testing.T, args ...string) *config.Config {
	t.Helper()
	c, err := config.Parse(append([]string{"--storage-engine", "memory"}, args...), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBuild(t *testing.T) {
	client, peer, err := Build(parse(t), zap.NewNop())
	if err != nil || client != nil || peer != nil {
		t.Fatalf("no TLS flag: %v %v %v", client, peer, err)
	}
	c := parse(t, "--auto-tls", "--peer-auto-tls", "--self-signed-cert-validity", "1",
		"--listen-client-urls", "https://127.0.0.1:2379", "--advertise-client-urls", "https://127.0.0.1:2379",
		"--listen-peer-urls", "https://127.0.0.1:2380", "--initial-advertise-peer-urls", "https://127.0.0.1:2380",
		"--initial-cluster", "default=https://127.0.0.1:2380")
	client, peer, err = Build(c, zap.NewNop())
	if err != nil || client == nil || peer == nil {
		t.Fatalf("auto TLS: %v %v %v", client, peer, err)
	}
	if got := client.Server.NextProtos; len(got) != 2 || got[0] != "h2" {
		t.Errorf("client ALPN %v, want h2 first", got)
	}
	if got := peer.Server.NextProtos; len(got) != 1 || got[0] != "http/1.1" {
		t.Errorf("peer ALPN %v, want http/1.1", got)
	}
	self := SelfClient(client, c.Member.ListenClientURLs)
	if self == nil || self.VerifyPeerCertificate != nil {
		t.Errorf("self client TLS %v", self)
	}
	if SelfClient(client, parse(t).Member.ListenClientURLs) != nil {
		t.Error("TLS for a plain http self URL")
	}
}

func TestBuildWarnsOfAnUnusableCRL(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	c := parse(t, "--auto-tls", "--client-crl-file", "/nonexistent/crl.pem")
	if _, _, err := Build(c, zap.New(core)); err != nil {
		t.Fatal(err)
	}
	if logs.FilterMessageSnippet("CRL file unusable").FilterField(zap.String("flag", "--client-crl-file")).Len() != 1 {
		t.Fatalf("logs %v", logs.All())
	}
}

func TestLogRejections(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	logRejections(zap.New(core), "rejected connection on peer endpoint")(tlsutil.Rejection{
		ServerName: "m1", Remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5}, Err: errors.New("revoked"),
	})
	e := logs.All()
	if len(e) != 1 || e[0].Message != "rejected connection on peer endpoint" || e[0].ContextMap()["remote-addr"] != "127.0.0.1:5" ||
		e[0].ContextMap()["server-name"] != "m1" {
		t.Fatalf("logged %v", e)
	}
}
