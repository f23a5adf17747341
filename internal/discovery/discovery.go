package discovery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

const registry = "/_etcd/registry"

// etcd's discovery errors.
var (
	ErrSizeNotFound = errors.New("discovery: size key not found")
	ErrBadSizeKey   = errors.New("discovery: size key is bad")
	ErrFullCluster  = errors.New("discovery: cluster is full")
)

// Config is what the --discovery-* flags say.
type Config struct {
	Endpoints             []string
	Token                 string
	DialTimeout           time.Duration
	RequestTimeout        time.Duration
	KeepAliveTime         time.Duration
	KeepAliveTimeout      time.Duration
	InsecureTransport     bool
	InsecureSkipTLSVerify bool
	CertFile, KeyFile     string
	CAFile                string
	User, Password        string
}

func (c Config) tls() (*tls.Config, error) {
	// As etcd's client config (clientv3.NewClientConfig): any certificate,
	// key or CA file, --discovery-insecure-transport=false or
	// --discovery-insecure-skip-tls-verify turns TLS on; a certificate
	// without its key (or the reverse) is an error, not a plain dial.
	if c.InsecureTransport && c.CertFile == "" && c.KeyFile == "" && c.CAFile == "" && !c.InsecureSkipTLSVerify {
		return nil, nil
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, fmt.Errorf("discovery: --discovery-cert and --discovery-key must both be given (cert %q, key %q)", c.CertFile, c.KeyFile)
	}
	tc := &tls.Config{InsecureSkipVerify: c.InsecureSkipTLSVerify} //nolint:gosec // the operator's --discovery-insecure-skip-tls-verify
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("discovery: load --discovery-cert/--discovery-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("discovery: read --discovery-cacert: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("discovery: no certificate in --discovery-cacert %s", c.CAFile)
		}
	}
	return tc, nil
}

// Join registers the member (memberID, self = "name=peer-urls") under the
// token and returns the cluster's --initial-cluster once size members have
// registered. It waits until ctx ends.
func Join(ctx context.Context, c Config, memberID uint64, self string, lg *zap.Logger) (string, error) {
	tc, err := c.tls()
	if err != nil {
		return "", err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: c.Endpoints, DialTimeout: c.DialTimeout, TLS: tc,
		DialKeepAliveTime: c.KeepAliveTime, DialKeepAliveTimeout: c.KeepAliveTimeout,
		Username: c.User, Password: c.Password, Logger: lg.Named("discovery-client"),
	})
	if err != nil {
		return "", fmt.Errorf("discovery: connect to %v: %w", c.Endpoints, err)
	}
	defer cli.Close()
	d := &discovery{cli: cli, cfg: c, lg: lg,
		prefix: path.Join(registry, c.Token, "members"), self: path.Join(registry, c.Token, "members", fmt.Sprintf("%x", memberID))}
	size, err := d.size(ctx)
	if err != nil {
		return "", err
	}
	if _, _, err := d.members(ctx, size); err != nil {
		return "", err
	}
	rctx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
	_, err = cli.Put(rctx, d.self, self)
	cancel()
	if err != nil {
		return "", fmt.Errorf("discovery: register %s: %w", d.self, err)
	}
	lg.Info("register member itself successfully", zap.String("memberKey", d.self), zap.String("memberInfo", self))
	ms, rev, err := d.members(ctx, size)
	if err != nil {
		return "", err
	}
	if len(ms) < size {
		if ms, err = d.wait(ctx, ms, size, rev); err != nil {
			return "", err
		}
	}
	out := make([]string, 0, size)
	for _, m := range ms[:size] {
		out = append(out, m.value)
	}
	return strings.Join(out, ","), nil
}

type discovery struct {
	cli          *clientv3.Client
	cfg          Config
	lg           *zap.Logger
	prefix, self string
}

type member struct {
	key, value string
	created    int64
}

func (d *discovery) size(ctx context.Context) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	resp, err := d.cli.Get(rctx, path.Join(registry, d.cfg.Token, "_config/size"))
	if err != nil {
		return 0, fmt.Errorf("discovery: get cluster size: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, ErrSizeNotFound
	}
	n, err := strconv.Atoi(string(resp.Kvs[0].Value))
	if err != nil || n <= 0 {
		return 0, ErrBadSizeKey
	}
	return n, nil
}

// members returns the registered members in creation order and the
// revision they were read at; ErrFullCluster when size others registered
// before this member.
func (d *discovery) members(ctx context.Context, size int) ([]member, int64, error) {
	rctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	resp, err := d.cli.Get(rctx, d.prefix+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil, 0, fmt.Errorf("discovery: get members: %w", err)
	}
	var ms []member
	for _, kv := range resp.Kvs {
		ms = add(ms, member{key: string(kv.Key), value: strings.TrimSpace(string(kv.Value)), created: kv.CreateRevision})
	}
	i := slices.IndexFunc(ms, func(m member) bool { return m.key == d.self })
	if (i < 0 && len(ms) >= size) || i >= size {
		return nil, 0, ErrFullCluster
	}
	return ms, resp.Header.Revision, nil
}

func add(ms []member, m member) []member {
	if !strings.Contains(m.value, "=") || slices.ContainsFunc(ms, func(o member) bool { return o.key == m.key }) {
		return ms // not "name=urls", or seen already
	}
	ms = append(ms, m)
	slices.SortStableFunc(ms, func(a, b member) int { return int(a.created - b.created) })
	return ms
}

// wait watches the members prefix from after rev until size registered.
func (d *discovery) wait(ctx context.Context, ms []member, size int, rev int64) ([]member, error) {
	d.lg.Info("waiting for peers from discovery service", zap.Int("clusterSize", size), zap.Int("found-peers", len(ms)))
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range d.cli.Watch(wctx, d.prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := wr.Err(); err != nil {
			return nil, fmt.Errorf("discovery: watch members: %w", err)
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypePut {
				ms = add(ms, member{key: string(ev.Kv.Key), value: strings.TrimSpace(string(ev.Kv.Value)), created: ev.Kv.CreateRevision})
			}
		}
		if len(ms) >= size {
			d.lg.Info("found all needed peers from discovery service", zap.Int("clusterSize", size), zap.Int("found-peers", len(ms)))
			return ms, nil
		}
	}
	return nil, fmt.Errorf("discovery: watch members: %w", ctx.Err())
}
