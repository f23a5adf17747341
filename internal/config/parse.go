package config

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrHelp is returned by Parse for -h/--help; print Usage() and exit 0.
var ErrHelp = flag.ErrHelp

// EnvPrefix is the prefix of the environment variables that set flags:
// --data-dir is ETCD_DATA_DIR, --storage-engine is ETCD_STORAGE_ENGINE.
const EnvPrefix = "ETCD"

// FlagToEnv is the environment variable that sets the named flag.
func FlagToEnv(name string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Parse builds a Config from command-line arguments (without the program
// name) and the environment (os.Environ() form), with etcd v3.7.3's rules:
//
//   - Flags take one or two dashes (Go's flag package, as etcd).
//   - Without a config file, every flag not given on the command line can be
//     set by ETCD_<FLAG> (upper case, dashes as underscores). A variable
//     that is set for a flag also given on the command line is an error, as
//     in etcd (which exits on it). Empty variables are ignored.
//   - --config-file (or ETCD_CONFIG_FILE) loads an etcd YAML config file;
//     then every other flag and environment variable is ignored.
//   - --version short-cuts everything else: PrintVersion is set and nothing
//     more is read.
//
// Parse checks syntax (each value parses); Validate checks the combination.
func Parse(args []string, environ []string) (*Config, error) {
	c := Default()
	fs, _ := newFlagSet(c)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, ErrHelp
		}
		return nil, flagError(err)
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("%q is not a valid flag", fs.Arg(0))
	}
	if c.PrintVersion {
		return c, nil
	}
	env := envMap(environ)
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "METASTORE_TESTING_PANIC_KEY="); ok {
			c.Testing.PanicKey = v
		}
		if v, ok := strings.CutPrefix(kv, "METASTORE_TESTING_DNS_SERVER="); ok {
			c.Testing.DNSServer = v
		}
		if v, ok := strings.CutPrefix(kv, "METASTORE_TEST_RETAIN_RAFT_LOG="); ok {
			c.Testing.RetainRaftLog = v == "1"
		}
	}

	onCmdLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCmdLine[f.Name] = true })

	if c.ConfigFile == "" {
		c.ConfigFile = env[FlagToEnv(flagConfigFile)]
	}
	if c.ConfigFile != "" {
		path := c.ConfigFile
		fc := Default()
		ffs, fbyName := newFlagSet(fc)
		if err := fc.loadFile(path, ffs, fbyName); err != nil {
			return nil, err
		}
		fc.ConfigFile = path
		var ignored []string
		for n := range onCmdLine {
			if n != flagConfigFile {
				ignored = append(ignored, "--"+n)
			}
		}
		sort.Strings(ignored)
		if len(ignored) > 0 {
			fc.warnf("loaded server configuration %q; other command line flags and environment variables are ignored: %s", path, strings.Join(ignored, " "))
		}
		c = fc
	} else {
		for n := range onCmdLine {
			c.set[n] = SourceFlag
		}
		if err := c.applyEnv(fs, env, onCmdLine); err != nil {
			return nil, err
		}
		// etcd: listening on explicit client URLs without saying what to
		// advertise is an error (reported by Validate), not the default.
		if c.IsSet("listen-client-urls") && !c.IsSet("advertise-client-urls") {
			c.Member.AdvertiseClientURLs = nil
		}
		// etcd: discovery replaces the default initial cluster.
		if c.usesDiscovery() && !c.IsSet("initial-cluster") {
			c.Cluster.InitialCluster = ""
		}
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	return c, nil
}

// applyEnv sets every flag not given on the command line from its
// ETCD_<FLAG> variable.
func (c *Config) applyEnv(fs *flag.FlagSet, env map[string]string, onCmdLine map[string]bool) error {
	used := map[string]bool{}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || f.Name == flagVersion || f.Name == flagConfigFile {
			return
		}
		key := FlagToEnv(f.Name)
		val, ok := env[key]
		if !ok {
			return
		}
		if onCmdLine[f.Name] {
			err = fmt.Errorf("conflicting environment variable %s is shadowed by corresponding command-line flag --%s (either unset environment variable or disable flag)", key, f.Name)
			return
		}
		if val == "" {
			return
		}
		used[key] = true
		if serr := fs.Set(f.Name, val); serr != nil {
			err = fmt.Errorf("invalid value %q for environment variable %s (flag --%s): %w", val, key, f.Name, serr)
			return
		}
		c.set[f.Name] = SourceEnv
	})
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case used[k], k == FlagToEnv(flagConfigFile):
		case k == FlagToEnv(flagVersion):
			c.warnf("cannot set special environment variable %s; ignoring it", k)
		case strings.HasPrefix(k, EnvPrefix+"_") && env[k] != "":
			if _, isFlag := lookupEnvFlag(fs, k); !isFlag {
				c.warnf("unrecognized environment variable %s", k)
			}
		}
	}
	return nil
}

func lookupEnvFlag(fs *flag.FlagSet, key string) (string, bool) {
	var name string
	fs.VisitAll(func(f *flag.Flag) {
		if FlagToEnv(f.Name) == key {
			name = f.Name
		}
	})
	return name, name != ""
}

func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k != "" {
			m[k] = v
		}
	}
	return m
}

// finish derives the typed settings that depend on several flags, the same
// way whichever source the flags came from.
func (c *Config) finish() error {
	if c.Member.Name == "" {
		c.Member.Name = DefaultName
	}
	// etcd: naming the member without giving --initial-cluster bootstraps a
	// one-member cluster under that name.
	defaultInitial := initialClusterFromName(DefaultName, mustURLs(defaultListenPeerURL))
	if c.Member.Name != DefaultName && c.Cluster.InitialCluster == defaultInitial {
		c.Cluster.InitialCluster = initialClusterFromName(c.Member.Name, c.Member.AdvertisePeerURLs)
	}
	if c.Member.DataDir == "" {
		c.Member.DataDir = c.Member.Name + DataDirSuffix
	}
	if len(c.Log.Outputs) == 0 {
		c.Log.Outputs = []string{"default"}
	}
	if c.Cluster.State == "" {
		c.Cluster.State = ClusterStateNew
	}
	members, err := parseInitialCluster(c.Cluster.InitialCluster)
	if err != nil {
		return fmt.Errorf("invalid value %q for flag --initial-cluster: %w", c.Cluster.InitialCluster, err)
	}
	c.Cluster.InitialMembers = members
	// etcd v3.7.3 enforces the default phase whatever --v2-deprecation
	// (or the config file) says.
	c.Cluster.V2Deprecation = V2DeprecationDefault
	return c.parseRetention()
}

// parseRetention interprets --auto-compaction-retention for the mode, as
// etcd does: periodic takes a duration or a bare number of hours, revision
// takes a revision count.
func (c *Config) parseRetention() error {
	q := &c.Quota
	q.AutoCompactionPeriod, q.AutoCompactionRevisions = 0, 0
	ret := strings.TrimSpace(q.AutoCompactionRetention)
	if ret == "" {
		ret = "0"
	}
	switch q.AutoCompactionMode {
	case CompactionModePeriodic:
		if h, err := strconv.Atoi(ret); err == nil {
			if h < 0 {
				return fmt.Errorf("invalid value %q for flag --auto-compaction-retention: must not be negative", ret)
			}
			q.AutoCompactionPeriod = time.Duration(h) * time.Hour
			return nil
		}
		d, err := time.ParseDuration(ret)
		if err != nil || d < 0 {
			return fmt.Errorf("invalid value %q for flag --auto-compaction-retention: expected a duration such as \"1h\" or \"30m\", or a number of hours", ret)
		}
		q.AutoCompactionPeriod = d
	case CompactionModeRevision:
		n, err := strconv.ParseInt(ret, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid value %q for flag --auto-compaction-retention: expected a number of revisions in revision mode", ret)
		}
		q.AutoCompactionRevisions = n
	}
	// An unknown mode is reported by Validate, with the mode's flag named.
	return nil
}

// parseInitialCluster parses "name=url,name=url" (a name may repeat to give
// several URLs) into name → sorted URLs.
func parseInitialCluster(s string) (map[string][]url.URL, error) {
	raw := map[string][]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, u, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not of the form name=peer-url", part)
		}
		raw[name] = append(raw[name], u)
	}
	out := make(map[string][]url.URL, len(raw))
	for name, us := range raw {
		parsed, err := parseURLs(strings.Join(us, ","))
		if err != nil {
			return nil, err
		}
		out[name] = parsed
	}
	return out, nil
}

func (c *Config) usesDiscovery() bool {
	return c.Discovery.SRV != "" || c.Discovery.SRVName != "" || len(c.Discovery.Endpoints) > 0
}

// flagError rewrites the flag package's messages to name flags with two
// dashes, as metastore's help and etcd's documentation do.
func flagError(err error) error {
	msg := err.Error()
	for _, p := range []struct{ from, to string }{
		{"for flag -", "for flag --"},
		{"invalid boolean value", "invalid value"},
		{" for -", " for flag --"},
		{"argument: -", "argument: --"},
		{"not defined: -", "not defined: --"},
		{"flag: help requested", "help requested"},
	} {
		msg = strings.Replace(msg, p.from, p.to, 1)
	}
	return errors.New(msg)
}

// Usage is the --help text: how to run metastore, then every flag with its
// default, grouped as in etcd's help.
func Usage() string {
	var b strings.Builder
	b.WriteString(`Usage:

  metastore [flags]
    Start a metastore member (an etcd v3.7 compatible server).

  metastore --version
    Show the version of metastore and the etcd version it is compatible with.

  metastore -h | --help
    Show the help information about metastore.

  metastore --config-file
    Path to the server configuration file (etcd's YAML format). Note that if a configuration file is provided, other command line flags and environment variables will be ignored.
    Duration-typed fields may be written as integer nanoseconds (as etcd requires, e.g. 600000000000 for 10m) or as strings such as "10m".

Every flag can also be set with an environment variable ETCD_<FLAG>, e.g. ETCD_DATA_DIR or ETCD_STORAGE_ENGINE.
`)
	d := Default()
	all := specs(d)
	for _, g := range groupOrder {
		fmt.Fprintf(&b, "\n%s:\n", g)
		for _, s := range all {
			if s.group != g {
				continue
			}
			def := s.value.String()
			if s.defText != "" {
				def = s.defText
			}
			fmt.Fprintf(&b, "  --%s '%s'\n    %s\n", s.name, def, s.usage)
			if s.name == "feature-gates" {
				b.WriteString("    Options are:\n")
				for _, f := range knownFeatureHelp() {
					fmt.Fprintf(&b, "    %s\n", f)
				}
			}
		}
	}
	b.WriteString("\nCAUTIOUS with unsafe flag! It may break the guarantees given by the consensus protocol!\n")
	return b.String()
}

// flagNames lists every registered flag name (for tests and tools).
func flagNames() []string {
	fs, _ := newFlagSet(Default())
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return slices.Sorted(slices.Values(names))
}

// ParseInitialCluster parses an --initial-cluster value ("name=url,...",
// a name may repeat) into name → sorted URLs; discovery returns one.
func ParseInitialCluster(s string) (map[string][]url.URL, error) { return parseInitialCluster(s) }
