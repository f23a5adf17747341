package robustness

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/server"
	"github.com/metastore/metastore/tests/framework"
)

// ClusterConfig shapes a cluster of the real binary.
type ClusterConfig struct {
	Size            int
	SnapshotCount   int
	CatchupEntries  int
	HeartbeatMillis int
	ElectionMillis  int
	// Gofail runs the binary built with -tags failpoints (or the one
	// METASTORE_E2E_SERVER_BIN names, which must be) and gives each member
	// a GOFAIL_HTTP endpoint.
	Gofail    bool
	ExtraArgs []string
}

// Cluster is a running cluster whose members all sit behind peer proxies.
type Cluster struct {
	t   testing.TB
	cfg ClusterConfig
	// Members are the current members; Every also holds members replaced
	// away, whose data dirs still hold persisted requests.
	Members []*framework.Member
	Every   []*framework.Member
	// replaceVictim is the member replaceMember removes, chosen before the
	// traffic starts so that the watchers that must see every event stay
	// on members that remain.
	replaceVictim *framework.Member
	nextName      int // number in the name of the next member added
}

func (cfg ClusterConfig) memberOptions(t testing.TB, name string) framework.Options {
	args := []string{
		"--snapshot-count", strconv.Itoa(cfg.SnapshotCount),
		"--snapshot-catchup-entries", strconv.Itoa(max(cfg.CatchupEntries, 1)),
		"--heartbeat-interval", strconv.Itoa(cfg.HeartbeatMillis),
		"--election-timeout", strconv.Itoa(cfg.ElectionMillis),
		"--logger", "zap", "--log-level", "info",
	}
	o := framework.Options{
		Name:         name,
		ExtraArgs:    append(args, cfg.ExtraArgs...),
		Env:          []string{server.EnvRetainRaftLog + "=1"},
		PeerProxy:    true,
		StartTimeout: 60 * time.Second,
	}
	if cfg.Gofail {
		if os.Getenv(framework.EnvServerBin) == "" {
			o.Binary = framework.ServerBinaryTags(t, "failpoints")
		}
		env := o.Env
		o.Env = withGofailEndpoint(t, env)
		// StartCluster: an endpoint of its own for each member.
		o.MemberOptions = func(_ int, mo *framework.Options) { mo.Env = withGofailEndpoint(t, env) }
	}
	return o
}

// withGofailEndpoint is env plus GOFAIL_HTTP on a free loopback port.
func withGofailEndpoint(t testing.TB, env []string) []string {
	port, err := framework.FreePort()
	if err != nil {
		t.Fatalf("port for %s: %v", framework.EnvGofailHTTP, err)
	}
	return append(slices.Clone(env), fmt.Sprintf("%s=127.0.0.1:%d", framework.EnvGofailHTTP, port))
}

// StartCluster starts a cluster as cfg says and waits until every member
// serves.
func StartCluster(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	c := &Cluster{t: t, cfg: cfg}
	base := cfg.memberOptions(t, "")
	c.Members = framework.StartCluster(t, cfg.Size, base)
	c.Every = append([]*framework.Member(nil), c.Members...)
	c.nextName = cfg.Size
	return c
}

// Endpoints are the client URLs of the current members.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

func (c *Cluster) client(eps ...string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
}

// others are the current members but m.
func (c *Cluster) others(m *framework.Member) []*framework.Member {
	var rest []*framework.Member
	for _, o := range c.Members {
		if o != m {
			rest = append(rest, o)
		}
	}
	return rest
}

// status asks m for its status.
func (c *Cluster) status(ctx context.Context, m *framework.Member) (*clientv3.StatusResponse, error) {
	cl, err := c.client(m.ClientURL)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cl.Status(ctx, m.ClientURL)
}

// MemberID is m's member ID.
func (c *Cluster) MemberID(ctx context.Context, m *framework.Member) (uint64, error) {
	var id uint64
	err := framework.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		st, err := c.status(ctx, m)
		if err != nil {
			return false, nil
		}
		id = st.Header.MemberId
		return true, nil
	})
	return id, err
}

// Leader waits (up to 30 s) until a running member reports itself leader
// and returns it.
func (c *Cluster) Leader(ctx context.Context) (*framework.Member, error) {
	var leader *framework.Member
	err := framework.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		for _, m := range c.Members {
			if !m.Running() {
				continue
			}
			st, err := c.status(ctx, m)
			if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
				leader = m
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("no leader: %w", err)
	}
	return leader, nil
}

// Follower returns a running member that is not the leader (the leader
// itself in a one-member cluster).
func (c *Cluster) Follower(ctx context.Context, pick func(n int) int) (*framework.Member, error) {
	l, err := c.Leader(ctx)
	if err != nil {
		return nil, err
	}
	var fs []*framework.Member
	for _, m := range c.Members {
		if m != l {
			fs = append(fs, m)
		}
	}
	if len(fs) == 0 {
		return l, nil
	}
	return fs[pick(len(fs))], nil
}

// WaitHealthy waits until every member answers a linearizable read.
func (c *Cluster) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	for _, m := range c.Members {
		err := framework.WaitFor(timeout, 100*time.Millisecond, func() (bool, error) {
			cl, err := c.client(m.ClientURL)
			if err != nil {
				return false, nil
			}
			defer cl.Close()
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err = cl.Get(rctx, "health")
			return err == nil, nil
		})
		if err != nil {
			return fmt.Errorf("member %s not healthy after %v: %w", m.Name, timeout, err)
		}
	}
	return nil
}

// StopAll stops every member that still runs (SIGTERM, then the framework
// kills a member that does not exit) so that their data dirs can be read.
func (c *Cluster) StopAll() {
	for _, m := range c.Every {
		if m.Running() {
			m.Stop()
		}
	}
}

// DataDirs are the data dirs of every member the cluster ever had.
func (c *Cluster) DataDirs() map[string]string {
	dirs := map[string]string{}
	for _, m := range c.Every {
		dirs[m.Name] = m.DataDir
	}
	return dirs
}
