package server

import (
	"context"
	"fmt"
	"net"
	"strings"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/discovery"
	"github.com/metastore/metastore/internal/membership"
)

// discoverCluster replaces --initial-cluster with what etcd's v3 discovery
// service returns (internal/discovery), on a member's first start with
// --discovery-endpoints. The member's ID is computed as etcd computes it
// before joining: from its own peer URLs and --initial-cluster-token.
func (s *Server) discoverCluster() error {
	d := s.cfg.Discovery
	if d.SRV != "" {
		return s.discoverSRV()
	}
	if len(d.Endpoints) == 0 {
		return nil
	}
	// etcd registers name=--initial-advertise-peer-urls.
	own := s.cfg.Member.AdvertisePeerURLs
	var self []string
	for _, u := range own {
		self = append(self, s.cfg.Member.Name+"="+u.String())
	}
	id := membership.ComputeMemberID(urlStrings(own), s.cfg.Cluster.Token)
	s.lg.Info("Bootstrapping cluster using v3 discovery.", zap.Strings("discovery-endpoints", d.Endpoints))
	cluster, err := discovery.Join(context.Background(), discovery.Config{
		Endpoints: d.Endpoints, Token: d.Token, DialTimeout: d.DialTimeout, RequestTimeout: d.RequestTimeout,
		KeepAliveTime: d.KeepAliveTime, KeepAliveTimeout: d.KeepAliveTimeout, InsecureTransport: d.InsecureTransport,
		InsecureSkipTLSVerify: d.InsecureSkipTLSVerify, CertFile: d.CertFile, KeyFile: d.KeyFile, CAFile: d.CAFile,
		User: d.User, Password: d.Password,
	}, id, strings.Join(self, ","), s.lg.Named("discovery"))
	if err != nil {
		return fmt.Errorf("server: discovery: %w", err)
	}
	return s.useDiscovered(cluster)
}

// discoverSRV replaces --initial-cluster with the members DNS SRV records
// name (--discovery-srv, --discovery-srv-name; internal/discovery).
func (s *Server) discoverSRV() error {
	var r discovery.Resolver = net.DefaultResolver
	if addr := s.cfg.Testing.DNSServer; addr != "" {
		s.lg.Warn("TESTING: DNS SRV discovery asks this DNS server (METASTORE_TESTING_DNS_SERVER)", zap.String("server", addr))
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Discovery.RequestTimeout)
	defer cancel()
	cluster, err := discovery.SRVCluster(ctx, r, s.cfg.Discovery.SRV, s.cfg.Discovery.SRVName, s.cfg.Member.Name, s.cfg.Member.AdvertisePeerURLs)
	if err != nil {
		return fmt.Errorf("server: DNS SRV discovery: %w", err)
	}
	return s.useDiscovered(cluster)
}

// useDiscovered makes cluster, an --initial-cluster value, the members
// this member bootstraps with.
func (s *Server) useDiscovered(cluster string) error {
	members, err := config.ParseInitialCluster(cluster)
	if err != nil {
		return fmt.Errorf("server: discovery returned %q: %w", cluster, err)
	}
	if _, ok := members[s.cfg.Member.Name]; !ok {
		return fmt.Errorf("server: discovery returned %q, without this member %q", cluster, s.cfg.Member.Name)
	}
	s.cfg.Cluster.InitialMembers = members
	s.lg.Info("discovery got cluster successfully", zap.String("cluster", cluster))
	return nil
}

// discover is bootstrap.Config.Discover: --initial-cluster as the discovery
// service (if one is configured) answers it.
func (s *Server) discover() (map[string][]string, error) {
	if err := s.discoverCluster(); err != nil {
		return nil, err
	}
	return initialMembers(s.cfg.Cluster.InitialMembers), nil
}
