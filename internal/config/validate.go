package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
)

// Validate checks the configuration as etcd v3.7.3 does before it starts,
// plus metastore's own settings and that the data directory is usable. It
// touches nothing on disk. Each error is one line naming the flag at fault.
// Non-fatal findings are added to Warnings.
func (c *Config) Validate() error {
	checks := []func() error{
		c.validateLogging,
		c.validateURLs,
		c.validateBootstrap,
		c.validateRaft,
		c.validateStorage,
		c.validateQuota,
		c.validateGRPC,
		c.validateTLS,
		c.validateAuth,
		c.validateOps,
		c.validateLimits,
		c.validateDataDir,
		c.validateInitialCluster,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	if c.Member.Name == DefaultName {
		c.warnf("it isn't recommended to use default name, please set a value for --name. " +
			"Note that the cluster might run into issue when multiple members have the same default name")
	}
	return nil
}

func (c *Config) validateLogging() error {
	return c.LoggerConfig().Validate()
}

func (c *Config) validateURLs() error {
	bind := []struct {
		flag string
		urls []url.URL
	}{
		{"listen-peer-urls", c.Member.ListenPeerURLs},
		{"listen-client-urls", c.Member.ListenClientURLs},
		{"listen-client-http-urls", c.Member.ListenClientHTTPURLs},
		{"listen-metrics-urls", c.Ops.ListenMetricsURLs},
	}
	for _, b := range bind {
		if err := checkBindURLs(b.urls); err != nil {
			return fmt.Errorf("invalid value %q for flag --%s: %w", urlsString(b.urls), b.flag, err)
		}
	}
	if err := checkHostURLs(c.Member.AdvertisePeerURLs); err != nil {
		return fmt.Errorf(`invalid value %q for flag --initial-advertise-peer-urls: must be "host:port" (%w)`, urlsString(c.Member.AdvertisePeerURLs), err)
	}
	if err := checkHostURLs(c.Member.AdvertiseClientURLs); err != nil {
		return fmt.Errorf(`invalid value %q for flag --advertise-client-urls: must be in the format "host:port", "unix:/path/to/socket" or "unixs:/path/to/socket" (%w)`, urlsString(c.Member.AdvertiseClientURLs), err)
	}
	if len(c.Member.ListenClientURLs) == 0 {
		return errors.New("invalid value for flag --listen-client-urls: at least one URL is required")
	}
	if len(c.Member.AdvertiseClientURLs) == 0 {
		return errors.New("--advertise-client-urls is required when --listen-client-urls is set explicitly")
	}
	if len(c.Member.ListenPeerURLs) == 0 {
		return errors.New("invalid value for flag --listen-peer-urls: at least one URL is required")
	}
	if len(c.Member.AdvertisePeerURLs) == 0 {
		return errors.New("invalid value for flag --initial-advertise-peer-urls: at least one URL is required")
	}
	return nil
}

// checkBindURLs: a listen URL must name an IP address (or localhost), since
// binding to a DNS name is ambiguous.
func checkBindURLs(urls []url.URL) error {
	for _, u := range urls {
		if u.Scheme == "unix" || u.Scheme == "unixs" {
			continue
		}
		host, _, err := net.SplitHostPort(u.Host)
		if err != nil {
			return err
		}
		if host == "localhost" {
			continue
		}
		if net.ParseIP(host) == nil {
			return fmt.Errorf("expected IP in URL for binding (%s)", u.String())
		}
	}
	return nil
}

func checkHostURLs(urls []url.URL) error {
	for _, u := range urls {
		if u.Scheme == "unix" || u.Scheme == "unixs" {
			continue
		}
		host, _, err := net.SplitHostPort(u.Host)
		if err != nil {
			return err
		}
		if host == "" {
			return fmt.Errorf("unexpected empty host (%s)", u.String())
		}
	}
	return nil
}

func (c *Config) validateBootstrap() error {
	cl, d := &c.Cluster, &c.Discovery
	// InitialCluster is the source of truth; re-derive the parsed form in
	// case the Config was built or edited in code.
	members, err := parseInitialCluster(cl.InitialCluster)
	if err != nil {
		return fmt.Errorf("invalid value %q for flag --initial-cluster: %w", cl.InitialCluster, err)
	}
	cl.InitialMembers = members
	if cl.State != ClusterStateNew && cl.State != ClusterStateExisting {
		return fmt.Errorf("invalid value %q for flag --initial-cluster-state: must be %q or %q", cl.State, ClusterStateNew, ClusterStateExisting)
	}
	n := 0
	for _, on := range []bool{cl.InitialCluster != "", d.SRV != "", len(d.Endpoints) > 0} {
		if on {
			n++
		}
	}
	if n > 1 {
		return errors.New(`multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery-endpoints" or "discovery-srv"`)
	}
	if (d.Token != "") != (len(d.Endpoints) > 0) {
		return errors.New("both --discovery-token and --discovery-endpoints must be set")
	}
	if d.Fallback == "proxy" {
		return errors.New(`v2 proxy is deprecated, and --discovery-fallback can't be configured as "proxy"`)
	}
	if d.Fallback != "exit" {
		return fmt.Errorf("invalid value %q for flag --discovery-fallback: must be \"exit\"", d.Fallback)
	}
	if cl.MaxLearners < 0 {
		return fmt.Errorf("invalid value %d for flag --max-learners: must not be negative", cl.MaxLearners)
	}
	return nil
}

func (c *Config) validateRaft() error {
	r := &c.Raft
	if r.HeartbeatInterval <= 0 {
		return fmt.Errorf("--heartbeat-interval must be >0 (set to %dms)", r.HeartbeatInterval.Milliseconds())
	}
	if r.ElectionTimeout <= 0 {
		return fmt.Errorf("--election-timeout must be >0 (set to %dms)", r.ElectionTimeout.Milliseconds())
	}
	if 5*r.HeartbeatInterval > r.ElectionTimeout {
		return fmt.Errorf("--election-timeout[%dms] should be at least as 5 times as --heartbeat-interval[%dms]",
			r.ElectionTimeout.Milliseconds(), r.HeartbeatInterval.Milliseconds())
	}
	if r.ElectionTimeout > maxElection {
		return fmt.Errorf("--election-timeout[%dms] is too long, and should be set less than %dms",
			r.ElectionTimeout.Milliseconds(), maxElection.Milliseconds())
	}
	if r.SnapshotCount == 0 {
		return errors.New("invalid value 0 for flag --snapshot-count: must be >0")
	}
	if r.GatherWindow < 0 || r.GatherWindow > MaxGatherWindow {
		return fmt.Errorf("invalid value %v for flag --raft-gather-window: must be between 0 (off) and %v", r.GatherWindow, MaxGatherWindow)
	}
	if r.SnapshotCatchUpBytes != 0 && r.SnapshotCatchUpBytes < MinMemoryFlagBytes {
		return errors.New("invalid value for flag --snapshot-catchup-bytes: must be 0 or at least 1MiB")
	}
	return nil
}

func (c *Config) validateStorage() error {
	switch c.Storage.Engine {
	case EnginePebble, EngineMemory:
	default:
		return fmt.Errorf("invalid value %q for flag --storage-engine: unknown storage engine, must be %q or %q", c.Storage.Engine, EnginePebble, EngineMemory)
	}
	return nil
}

func (c *Config) validateQuota() error {
	q := &c.Quota
	switch q.AutoCompactionMode {
	case CompactionModePeriodic, CompactionModeRevision:
	case "":
		return errors.New("undefined auto-compaction-mode: set --auto-compaction-mode to periodic or revision")
	default:
		return fmt.Errorf("invalid value %q for flag --auto-compaction-mode: unknown auto-compaction-mode, must be %q or %q", q.AutoCompactionMode, CompactionModePeriodic, CompactionModeRevision)
	}
	// The retention was interpreted by Parse; re-derive in case the Config
	// was edited since.
	if err := c.parseRetention(); err != nil {
		return err
	}
	if q.CompactionBatchLimit < 0 {
		return fmt.Errorf("invalid value %d for flag --compaction-batch-limit: must not be negative", q.CompactionBatchLimit)
	}
	return nil
}

func (c *Config) validateGRPC() error {
	g := &c.GRPC
	if g.MaxRequestBytes <= 0 {
		return fmt.Errorf("invalid value %d for flag --max-request-bytes: must be >0", g.MaxRequestBytes)
	}
	if g.MaxTxnOps <= 0 {
		return fmt.Errorf("invalid value %d for flag --max-txn-ops: must be >0", g.MaxTxnOps)
	}
	if g.MaxConcurrentStreams == 0 {
		return errors.New("invalid value 0 for flag --max-concurrent-streams: must be >0")
	}
	for _, d := range []struct {
		flag string
		v    int64
	}{
		{"grpc-keepalive-min-time", int64(g.KeepAliveMinTime)},
		{"grpc-keepalive-interval", int64(g.KeepAliveInterval)},
		{"grpc-keepalive-timeout", int64(g.KeepAliveTimeout)},
	} {
		if d.v < 0 {
			return fmt.Errorf("invalid value for flag --%s: must not be negative", d.flag)
		}
	}
	return nil
}

var tlsVersions = map[string]uint16{"": 0, "TLS1.2": tls.VersionTLS12, "TLS1.3": tls.VersionTLS13}

func (c *Config) validateTLS() error {
	t := &c.TLS
	minV, ok := tlsVersions[t.MinVersion]
	if !ok {
		return fmt.Errorf("invalid value %q for flag --tls-min-version: unexpected TLS version %q (must be one of: TLS1.2, TLS1.3)", t.MinVersion, t.MinVersion)
	}
	maxV, ok := tlsVersions[t.MaxVersion]
	if !ok {
		return fmt.Errorf("invalid value %q for flag --tls-max-version: unexpected TLS version %q (must be one of: TLS1.2, TLS1.3)", t.MaxVersion, t.MaxVersion)
	}
	if maxV != 0 && minV > maxV {
		return fmt.Errorf("min version (%s) is greater than max version (%s): check --tls-min-version and --tls-max-version", t.MinVersion, t.MaxVersion)
	}
	if minV == tls.VersionTLS13 && len(t.CipherSuites) > 0 {
		return errors.New("cipher suites cannot be configured when only TLS1.3 is enabled: unset --cipher-suites or lower --tls-min-version")
	}
	known := map[string]bool{}
	for _, s := range tls.CipherSuites() {
		known[s.Name] = true
	}
	for _, s := range tls.InsecureCipherSuites() {
		known[s.Name] = true
	}
	for _, s := range t.CipherSuites {
		if !known[s] {
			return fmt.Errorf("invalid value %q for flag --cipher-suites: unexpected TLS cipher suite %q", strings.Join(t.CipherSuites, ","), s)
		}
	}
	for _, side := range []struct {
		prefix string
		t      TLSConfig
	}{{"", c.ClientTLS}, {"peer-", c.PeerTLS}} {
		if (side.t.CertFile == "") != (side.t.KeyFile == "") {
			return fmt.Errorf("--%scert-file and --%skey-file must be set together", side.prefix, side.prefix)
		}
		// etcd's error, which it meets when generating the certificate.
		if side.t.AutoTLS && side.t.CertFile == "" && t.SelfSignedCertValidity == 0 {
			return errors.New("selfSignedCertValidity is invalid,it should be greater than 0")
		}
	}
	return nil
}

func (c *Config) validateAuth() error {
	a := &c.Auth
	kind, _, _ := strings.Cut(a.Token, ",")
	switch kind {
	case "simple", "jwt":
	default:
		return fmt.Errorf("invalid value %q for flag --auth-token: unknown token type %q, must be 'simple' or 'jwt,...'", a.Token, kind)
	}
	if a.TokenTTL <= 0 {
		return errors.New("invalid value 0 for flag --auth-token-ttl: must be >0")
	}
	// etcd falls back to the default cost rather than failing.
	if a.BcryptCost < 4 || a.BcryptCost > 31 {
		c.warnf("--bcrypt-cost %d is outside 4..31; using the default cost 10", a.BcryptCost)
		a.BcryptCost = 10
	}
	return nil
}

func (c *Config) validateOps() error {
	o := &c.Ops
	switch o.Metrics {
	case "basic", "extensive":
	default:
		c.warnf("--metrics %q is neither 'basic' nor 'extensive'; using basic", o.Metrics)
	}
	if o.CompactHashCheckTime <= 0 {
		return fmt.Errorf("--compact-hash-check-time must be >0 (set to %v)", o.CompactHashCheckTime)
	}
	if o.WatchProgressNotifyInterval < 0 {
		return fmt.Errorf("invalid value %v for flag --watch-progress-notify-interval: must not be negative", o.WatchProgressNotifyInterval)
	}
	// etcd's words, typo included, checked only when tracing is on.
	if o.Tracing.Enabled && o.Tracing.SamplingRatePerMillion < 0 {
		return errors.New("distributed tracing configurition is not valid: (tracing sampling rate must be positive)")
	}
	if o.Tracing.Enabled && o.Tracing.SamplingRatePerMillion > 1000000 {
		return errors.New("distributed tracing configurition is not valid: (tracing sampling rate must be less than 1000000)")
	}
	f := &c.Features
	if f.Enabled(FeatureLeaseCheckpointPersist) && !f.Enabled(FeatureLeaseCheckpoint) {
		return errors.New("enabling feature gate LeaseCheckpointPersist requires enabling feature gate LeaseCheckpoint (--feature-gates)")
	}
	if f.Enabled(FeatureLeaseCheckpoint) && !f.Enabled(FeatureLeaseCheckpointPersist) {
		c.warnf("Detected that checkpointing is enabled without persistence. Consider enabling feature gate LeaseCheckpointPersist")
	}
	return nil
}

func (c *Config) validateLimits() error {
	l := &c.Limits
	for _, v := range []struct {
		flag string
		neg  bool
	}{
		{"max-connections", l.MaxConnections < 0},
		{"max-requests-in-flight", l.MaxRequestsInFlight < 0},
		{"memory-limit-bytes", l.MemoryLimitBytes < 0},
		{"rate-limit-per-client", l.RateLimitPerClient < 0},
		{"rate-limit-burst", l.RateLimitBurst < 0},
	} {
		if v.neg {
			return fmt.Errorf("invalid value for flag --%s: must not be negative", v.flag)
		}
	}
	for _, v := range []struct {
		flag string
		d    int64
	}{
		{"request-timeout", int64(l.RequestTimeout)},
		{"connection-timeout", int64(l.ConnectionTimeout)},
		{"shutdown-timeout", int64(l.ShutdownTimeout)},
	} {
		if v.d <= 0 {
			return fmt.Errorf("invalid value for flag --%s: must be >0", v.flag)
		}
	}
	return l.validateMemorySizes()
}

// validateMemorySizes checks the memory-sizing flags (issue 11).
func (l *LimitsConfig) validateMemorySizes() error {
	for _, v := range []struct {
		flag     string
		n        int64
		zeroOK   bool
		maxBytes int64
	}{
		{"max-range-bytes-in-flight", l.MaxRangeBytesInFlight, true, math.MaxInt64},
		{"storage-block-cache-bytes", l.StorageBlockCacheBytes, false, math.MaxInt64},
		{"storage-memtable-bytes", l.StorageMemtableBytes, false, maxMemtableBytes},
		{"storage-key-cache-bytes", l.StorageKeyCacheBytes, true, math.MaxInt64},
	} {
		if (v.n != 0 || !v.zeroOK) && v.n < MinMemoryFlagBytes {
			return fmt.Errorf("invalid value for flag --%s: must be at least 1MiB", v.flag)
		}
		if v.n > v.maxBytes {
			return fmt.Errorf("invalid value for flag --%s: must be less than 4GiB", v.flag)
		}
	}
	return nil
}

// validateDataDir makes sure the server will be able to use its data (and
// WAL) directory, without creating anything: an existing path must be a
// writable directory; for a missing one, the nearest existing ancestor must
// be a writable directory (the server creates the rest).
func (c *Config) validateDataDir() error {
	if c.Member.DataDir == "" {
		// As etcd: an empty data dir means the default one.
		c.Member.DataDir = c.Member.Name + DataDirSuffix
		c.warnf("'data-dir' was empty; using default %q", c.Member.DataDir)
	}
	if c.Storage.Engine == EngineMemory {
		// Nothing is written to disk.
		return nil
	}
	if err := checkWritableDir(c.Member.DataDir); err != nil {
		return fmt.Errorf("invalid value %q for flag --data-dir: %w", c.Member.DataDir, err)
	}
	if c.Member.WALDir != "" {
		if err := checkWritableDir(c.Member.WALDir); err != nil {
			return fmt.Errorf("invalid value %q for flag --wal-dir: %w", c.Member.WALDir, err)
		}
	}
	return nil
}

func checkWritableDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	p := abs
	for range 4096 { // bounded walk up to the root
		fi, err := os.Stat(p)
		switch {
		case err == nil:
			if !fi.IsDir() {
				if p == abs {
					return errors.New("not a directory")
				}
				return fmt.Errorf("cannot create it: %s is not a directory", p)
			}
			if err := syscall.Access(p, 2 /* W_OK */); err != nil {
				if p == abs {
					return fmt.Errorf("directory is not writable: %w", err)
				}
				return fmt.Errorf("cannot create it: %s is not writable: %w", p, err)
			}
			return nil
		case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
			parent := filepath.Dir(p)
			if parent == p {
				return fmt.Errorf("cannot create it: no existing parent directory")
			}
			p = parent
		default:
			return err
		}
	}
	return errors.New("path too deep")
}

// validateInitialCluster applies etcd's bootstrap checks (VerifyBootstrap /
// VerifyJoinExisting) when this start will bootstrap, i.e. the data dir
// holds nothing yet. On a restart etcd ignores --initial-cluster, and so do
// we.
func (c *Config) validateInitialCluster() error {
	if len(c.Discovery.Endpoints) > 0 || c.Discovery.SRV != "" {
		return nil
	}
	if c.Storage.Engine != EngineMemory && !dirEmpty(c.Member.DataDir) {
		return nil
	}
	if c.Cluster.InitialCluster == "" {
		return errors.New("initial cluster unset and no discovery endpoints found: set --initial-cluster")
	}
	members := c.Cluster.InitialMembers
	name := c.Member.Name
	local, ok := members[name]
	if !ok || len(local) == 0 {
		return fmt.Errorf("couldn't find local name %q in the initial cluster configuration (--initial-cluster %q)", name, c.Cluster.InitialCluster)
	}
	if dup := duplicateURL(members); dup != "" {
		return fmt.Errorf("invalid value %q for flag --initial-cluster: initial cluster has duplicate url %s", c.Cluster.InitialCluster, dup)
	}
	if c.Cluster.State == ClusterStateExisting {
		return nil
	}
	adv := canonicalURLs(c.Member.AdvertisePeerURLs)
	init := canonicalURLs(local)
	if slices.Equal(adv, init) {
		return nil
	}
	var missing []string
	for _, u := range init {
		if !slices.Contains(adv, u) {
			missing = append(missing, name+"="+u)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("--initial-cluster has %s but missing from --initial-advertise-peer-urls=%s",
			strings.Join(missing, ","), urlsString(c.Member.AdvertisePeerURLs))
	}
	for _, u := range adv {
		if !slices.Contains(init, u) {
			missing = append(missing, u)
		}
	}
	return fmt.Errorf("--initial-advertise-peer-urls has %s but missing from --initial-cluster=%s",
		strings.Join(missing, ","), c.Cluster.InitialCluster)
}

// canonicalURLs compares URLs the way etcd does after resolving, minus DNS:
// "localhost" means the loopback address.
func canonicalURLs(us []url.URL) []string {
	out := make([]string, 0, len(us))
	for _, u := range us {
		if host, port, err := net.SplitHostPort(u.Host); err == nil && host == "localhost" {
			u.Host = net.JoinHostPort("127.0.0.1", port)
		}
		out = append(out, u.String())
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func duplicateURL(members map[string][]url.URL) string {
	seen := map[string]bool{}
	for _, name := range sortedKeys(members) {
		for _, u := range members[name] {
			s := u.String()
			if seen[s] {
				return s
			}
			seen[s] = true
		}
	}
	return ""
}

// dirEmpty reports whether dir is missing or has no entries.
func dirEmpty(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return true
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) == 0
}
