package bootstrap

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strconv"

	"go.etcd.io/raft/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/storage"
)

// Config is what a member knows about itself and its cluster at start.
type Config struct {
	Engine  storage.Engine
	Members *membership.Store
	// Name is --name; InitialMembers is --initial-cluster (name → peer
	// URLs); Token is --initial-cluster-token.
	Name           string
	InitialMembers map[string][]string
	Token          string
	// InitialClusterSet says --initial-cluster was given explicitly; it is
	// only used to log that a restart ignores it.
	InitialClusterSet bool
	// Join is --initial-cluster-state=existing.
	Join bool
	// AdvertisePeerURLs is --initial-advertise-peer-urls: a joining member
	// finds its own entry in the member list by them.
	AdvertisePeerURLs []string
	// PeerTLS is the client side of the peer TLS settings, nil without TLS.
	PeerTLS *tls.Config
	// PeerLocalAddr is the address a joining member dials its peers from
	// (SetMemberLocalAddr); nil lets the kernel choose.
	PeerLocalAddr net.Addr
	DataDir       string // for log messages
	// Discover, when set, is asked on a new cluster's first start (not on a
	// restart, not on a join) for the members to use instead of
	// InitialMembers: etcd's v3 or DNS SRV discovery.
	Discover func() (map[string][]string, error)
	Logger   *zap.Logger
}

// Result is the identity Run settled.
type Result struct {
	MemberID uint64
	// Peers are raft's bootstrap peers: set only on the fresh start of a
	// new cluster.
	Peers []raft.Peer
	// Reach are the members the transport must reach at start (this
	// member among them): from --initial-cluster on a new cluster, from
	// the cluster on a join, from the replicated member list on a restart.
	Reach []*membership.Member
}

// Run reads or establishes this member's identity.
func Run(cfg Config) (Result, error) {
	lg := cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	id, ok, err := membership.ReadLocalID(cfg.Engine)
	if err != nil {
		return Result{}, fmt.Errorf("bootstrap: %w", err)
	}
	if ok {
		if !cfg.Join && cfg.InitialClusterSet {
			lg.Info("data dir holds an existing member; ignoring --initial-cluster", zap.String("data-dir", cfg.DataDir))
		}
		return Result{MemberID: id, Reach: cfg.Members.Members()}, nil
	}
	if cfg.Join {
		return join(cfg, lg)
	}
	if cfg.Discover != nil {
		ms, err := cfg.Discover()
		if err != nil {
			return Result{}, fmt.Errorf("bootstrap: %w", err)
		}
		cfg.InitialMembers = ms
	}
	return newCluster(cfg)
}

// newCluster derives every member's ID and the cluster ID from
// --initial-cluster and records this member's before raft runs.
func newCluster(cfg Config) (Result, error) {
	var res Result
	for name, urls := range cfg.InitialMembers {
		// Every member must put identical bootstrap entries in its log, so
		// the context holds only what --initial-cluster says; client URLs
		// are published through Raft once the member serves.
		m := &membership.Member{ID: membership.ComputeMemberID(urls, cfg.Token), Name: name, PeerURLs: urls}
		if name == cfg.Name {
			res.MemberID = m.ID
		}
		res.Reach = append(res.Reach, m)
	}
	if res.MemberID == 0 {
		return Result{}, fmt.Errorf("bootstrap: --initial-cluster does not name this member (%q)", cfg.Name)
	}
	// In ID order, as etcd hands them to raft, so that every member's
	// bootstrap entries are the same whatever the map order.
	slices.SortFunc(res.Reach, func(a, b *membership.Member) int { return cmp.Compare(a.ID, b.ID) })
	ids := make([]uint64, len(res.Reach))
	for i, m := range res.Reach {
		ids[i] = m.ID
		res.Peers = append(res.Peers, raft.Peer{ID: m.ID, Context: m.Encode()})
	}
	if err := cfg.Members.RecordIdentity(cfg.Engine, res.MemberID, membership.ComputeClusterID(ids)); err != nil {
		return Result{}, fmt.Errorf("bootstrap: %w", err)
	}
	return res, nil
}

// join records the identity of a member added with MemberAdd that starts
// for the first time: its ID is the one the cluster gave its peer URLs.
// Raft starts empty and the leader sends it the log or a snapshot, which
// bring the member list; until then the transport reaches the members the
// cluster listed.
func join(cfg Config, lg *zap.Logger) (Result, error) {
	self, err := membership.ParsePeerURLs(cfg.AdvertisePeerURLs)
	if err != nil {
		return Result{}, fmt.Errorf("bootstrap: --initial-advertise-peer-urls: %w", err)
	}
	cid, ms, err := fetchCluster(cfg, self)
	if err != nil {
		return Result{}, err
	}
	i := slices.IndexFunc(ms, func(m *membership.Member) bool { return slices.Equal(m.PeerURLs, self) })
	if i < 0 {
		return Result{}, fmt.Errorf("bootstrap: the cluster has no member with peer URLs %v; add it with 'etcdctl member add' first", self)
	}
	id := ms[i].ID
	if err := cfg.Members.RecordIdentity(cfg.Engine, id, cid); err != nil {
		return Result{}, fmt.Errorf("bootstrap: %w", err)
	}
	lg.Info("joining an existing cluster", zap.String("member-id", idHex(id)), zap.String("cluster-id", idHex(cid)))
	return Result{MemberID: id, Reach: ms}, nil
}

func idHex(id uint64) string { return strconv.FormatUint(id, 16) }
