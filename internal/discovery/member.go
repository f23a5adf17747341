package discovery

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/membership"
)

// Member is a starting member's side of discovery: which service its flags
// name, and who it is.
type Member struct {
	// Config is --discovery-endpoints and the flags that go with it.
	Config Config
	// SRV and SRVName are --discovery-srv and --discovery-srv-name.
	SRV, SRVName string
	// SRVTimeout bounds the DNS lookups (--discovery-request-timeout).
	SRVTimeout time.Duration
	// Resolver answers the SRV lookups; nil means the system's, or the
	// DNS server DNSServer names (tests only: METASTORE_TESTING_DNS_SERVER).
	Resolver  Resolver
	DNSServer string
	// Name, AdvertisePeerURLs and ClusterToken are --name,
	// --initial-advertise-peer-urls and --initial-cluster-token.
	Name              string
	AdvertisePeerURLs []url.URL
	ClusterToken      string
	Logger            *zap.Logger
}

// Configured reports whether a discovery service is configured.
func (m Member) Configured() bool { return m.SRV != "" || len(m.Config.Endpoints) > 0 }

// InitialCluster asks the configured service for the members this member
// bootstraps with (name → peer URLs), in place of --initial-cluster: DNS SRV
// records when --discovery-srv is set, else the v3 discovery protocol,
// where the member registers with the ID etcd computes before joining
// (from its own peer URLs and --initial-cluster-token).
func (m Member) InitialCluster(ctx context.Context) (map[string][]string, error) {
	lg := m.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	var cluster string
	var err error
	if m.SRV != "" {
		cluster, err = m.srv(ctx, lg)
		if err != nil {
			return nil, fmt.Errorf("DNS SRV discovery: %w", err)
		}
	} else {
		// etcd registers name=--initial-advertise-peer-urls.
		var self []string
		for _, u := range m.AdvertisePeerURLs {
			self = append(self, m.Name+"="+u.String())
		}
		id := membership.ComputeMemberID(urlStrings(m.AdvertisePeerURLs), m.ClusterToken)
		lg.Info("Bootstrapping cluster using v3 discovery.", zap.Strings("discovery-endpoints", m.Config.Endpoints))
		cluster, err = Join(ctx, m.Config, id, strings.Join(self, ","), lg)
		if err != nil {
			lg.Error("discovery failed to join cluster", zap.String("cluster", cluster), zap.Error(err))
			return nil, fmt.Errorf("discovery: %w", err)
		}
		lg.Info("discovery joined cluster successfully", zap.String("cluster", cluster))
	}
	members, err := config.ParseInitialCluster(cluster)
	if err != nil {
		return nil, fmt.Errorf("discovery returned %q: %w", cluster, err)
	}
	if _, ok := members[m.Name]; !ok {
		return nil, fmt.Errorf("discovery returned %q, without this member %q", cluster, m.Name)
	}
	out := make(map[string][]string, len(members))
	for name, us := range members {
		out[name] = urlStrings(us)
	}
	return out, nil
}

// srv looks the members up in DNS SRV records.
func (m Member) srv(ctx context.Context, lg *zap.Logger) (string, error) {
	r := m.Resolver
	switch addr := m.DNSServer; {
	case r != nil:
	case addr == "":
		r = net.DefaultResolver
	default:
		lg.Warn("TESTING: DNS SRV discovery asks this DNS server (METASTORE_TESTING_DNS_SERVER)", zap.String("server", addr))
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
	}
	ctx, cancel := context.WithTimeout(ctx, m.SRVTimeout)
	defer cancel()
	return SRVCluster(ctx, r, m.SRV, m.SRVName, m.Name, m.AdvertisePeerURLs)
}

func urlStrings(us []url.URL) []string {
	out := make([]string, 0, len(us))
	for _, u := range us {
		out = append(out, u.String())
	}
	return out
}

// FromFlags is the Member c's flags describe (--discovery-*, --name,
// --initial-advertise-peer-urls, --initial-cluster-token).
func FromFlags(c *config.Config, lg *zap.Logger) Member {
	d := c.Discovery
	return Member{
		Config: Config{Endpoints: d.Endpoints, Token: d.Token, DialTimeout: d.DialTimeout, RequestTimeout: d.RequestTimeout,
			KeepAliveTime: d.KeepAliveTime, KeepAliveTimeout: d.KeepAliveTimeout, InsecureTransport: d.InsecureTransport,
			InsecureSkipTLSVerify: d.InsecureSkipTLSVerify, CertFile: d.CertFile, KeyFile: d.KeyFile, CAFile: d.CAFile,
			User: d.User, Password: d.Password},
		SRV: d.SRV, SRVName: d.SRVName, SRVTimeout: d.RequestTimeout, DNSServer: c.Testing.DNSServer,
		Name: c.Member.Name, AdvertisePeerURLs: c.Member.AdvertisePeerURLs, ClusterToken: c.Cluster.Token,
		Logger: lg,
	}
}
