package discovery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
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
	// Clock times the back-off between retries; nil is the real clock.
	Clock Clock
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
// registered. As etcd's v3 discovery, it retries every call that fails to
// reach the service (reading the size, listing the members, registering)
// with Backoff, logging each retry; a missing or bad size key, a full
// cluster, an unusable client configuration or a failed login end it at
// once. It waits until ctx ends.
func Join(ctx context.Context, c Config, memberID uint64, self string, lg *zap.Logger) (string, error) {
	tc, err := c.tls()
	if err != nil {
		return "", err
	}
	// clientv3.New does not wait for a connection: it fails only on a bad
	// configuration or, with --discovery-user/--discovery-password, when
	// the login fails within --discovery-dial-timeout (etcd exits then too).
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: c.Endpoints, DialTimeout: c.DialTimeout, TLS: tc,
		DialKeepAliveTime: c.KeepAliveTime, DialKeepAliveTimeout: c.KeepAliveTimeout,
		Username: c.User, Password: c.Password, Logger: lg.Named("discovery-client"),
	})
	if err != nil {
		return "", fmt.Errorf("discovery: connect to %v: %w", c.Endpoints, err)
	}
	defer cli.Close()
	clk := c.Clock
	if clk == nil {
		clk = realClock{}
	}
	d := &discovery{cli: cli, cfg: c, lg: lg, clock: clk,
		prefix: path.Join(registry, c.Token, "members"), self: path.Join(registry, c.Token, "members", fmt.Sprintf("%x", memberID))}
	if _, _, _, err := d.check(ctx); err != nil {
		return "", err
	}
	if err := d.register(ctx, self); err != nil {
		return "", err
	}
	ms, size, rev, err := d.check(ctx)
	if err != nil {
		return "", err
	}
	for len(ms) < size {
		if ms, err = d.wait(ctx, ms, size, rev); err == nil {
			break
		}
		if ctx.Err() != nil {
			return "", err
		}
		// The watch broke (the service lost its leader, or compacted
		// past rev): list the members again and watch from there, where
		// etcd would watch again from the same, possibly compacted,
		// revision.
		d.lg.Warn("watching the discovery service's members failed", zap.Error(err))
		if err := d.backoff(ctx, "watch members"); err != nil {
			return "", err
		}
		if ms, size, rev, err = d.check(ctx); err != nil {
			return "", err
		}
	}
	out := make([]string, 0, size)
	for _, m := range ms[:size] {
		out = append(out, m.value)
	}
	return strings.Join(out, ","), nil
}

// Clock is the back-off's time source, so that unit tests need not wait.
type Clock interface {
	// Sleep waits d, or until ctx ends (returning ctx's error).
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	wait, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	<-wait.Done()
	return ctx.Err() // nil when only the wait's own deadline passed
}

// etcd's retry limits: the back-off doubles for maxExponentialRetries
// retries in a row and then stays constant; the count of retries in a row
// is practically unbounded (it is reset by every call that succeeds), so
// only ctx (SIGTERM) ends the wait for a service that never answers.
const (
	maxExponentialRetries = 8
	maxRetries            = math.MaxUint32
)

// ErrTooManyRetries is etcd's error after maxRetries failed calls in a row.
var ErrTooManyRetries = errors.New("discovery: too many retries")

// Backoff is how long etcd waits before the retry-th retry in a row (from
// 1): 2^retry seconds, 2 s to 256 s, then 256 s for every later retry,
// without jitter.
func Backoff(retry uint) time.Duration {
	retry = min(retry, maxExponentialRetries)
	return time.Duration(1<<retry) * time.Second
}

type discovery struct {
	cli          *clientv3.Client
	cfg          Config
	lg           *zap.Logger
	clock        Clock
	prefix, self string
	// retries counts the failed calls in a row; the next success resets it.
	retries uint
}

// backoff logs a retry of step as etcd does and waits Backoff(retries).
func (d *discovery) backoff(ctx context.Context, step string) error {
	if d.retries >= maxRetries {
		return ErrTooManyRetries
	}
	d.retries++
	b := Backoff(d.retries)
	d.lg.Warn("retry connecting to discovery service", zap.String("reason", step), zap.Duration("backoff", b))
	if err := d.clock.Sleep(ctx, b); err != nil {
		return fmt.Errorf("discovery: %s: %w", step, err)
	}
	return nil
}

// check reads the cluster size and the registered members, retrying
// until the service answers; ErrSizeNotFound, ErrBadSizeKey and
// ErrFullCluster end it at once.
func (d *discovery) check(ctx context.Context) ([]member, int, int64, error) {
	for {
		size, err := d.size(ctx)
		if err == nil {
			var ms []member
			var rev int64
			ms, rev, err = d.members(ctx, size)
			if err == nil || errors.Is(err, ErrFullCluster) {
				d.retries = 0
				return ms, size, rev, err
			}
			d.lg.Warn("failed to get cluster members from discovery service", zap.String("membersKeyPrefix", d.prefix), zap.Error(err))
		} else if errors.Is(err, ErrSizeNotFound) || errors.Is(err, ErrBadSizeKey) {
			return nil, 0, 0, err
		} else {
			d.lg.Warn("failed to get cluster size from discovery service", zap.String("clusterSizeKey", d.sizeKey()), zap.Error(err))
		}
		if err := d.backoff(ctx, "cluster status check"); err != nil {
			return nil, 0, 0, err
		}
	}
}

// register puts this member's key, retrying until the service answers.
func (d *discovery) register(ctx context.Context, self string) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
		_, err := d.cli.Put(rctx, d.self, self)
		cancel()
		if err == nil {
			d.retries = 0
			d.lg.Info("register member itself successfully", zap.String("memberKey", d.self), zap.String("memberInfo", self))
			return nil
		}
		d.lg.Warn("failed to register members itself to the discovery service", zap.String("memberKey", d.self), zap.Error(err))
		if err := d.backoff(ctx, "register member itself"); err != nil {
			return err
		}
	}
}

func (d *discovery) sizeKey() string { return path.Join(registry, d.cfg.Token, "_config/size") }

type member struct {
	key, value string
	created    int64
}

func (d *discovery) size(ctx context.Context) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	resp, err := d.cli.Get(rctx, d.sizeKey())
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
	// Without a leader the service's watch would stay silent: require one,
	// so that Join lists the members again instead.
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
