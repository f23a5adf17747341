package peers

import (
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/membership"
)

// Transport is the set of peers the raft transport reaches.
type Transport interface {
	AddPeer(id uint64, urls []string) error
	RemovePeer(id uint64)
	Peers() []uint64
}

// Config wires a Syncer.
type Config struct {
	Self      uint64
	Transport Transport
	// Removed is called once this member applied its own removal, after
	// RemovedDelay, which lets the commit reach the others (etcd waits
	// too).
	Removed      func()
	RemovedDelay time.Duration
	// AfterFunc runs Removed after the delay; nil means time.AfterFunc.
	AfterFunc func(time.Duration, func())
	Logger    *zap.Logger
}

// Syncer implements apply.MembershipObserver. It holds no state of its
// own: the transport holds the peers.
type Syncer struct{ cfg Config }

// New returns a Syncer.
func New(cfg Config) *Syncer {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
	}
	return &Syncer{cfg: cfg}
}

// Reach adds every member but this one as a peer.
func (s *Syncer) Reach(ms []*membership.Member) {
	for _, m := range ms {
		s.MemberAdded(m)
	}
}

// MemberAdded implements apply.MembershipObserver.
func (s *Syncer) MemberAdded(m *membership.Member) {
	if m.ID == s.cfg.Self {
		return
	}
	if err := s.cfg.Transport.AddPeer(m.ID, m.PeerURLs); err != nil {
		s.cfg.Logger.Warn("cannot reach member", zap.String("member-id", strconv.FormatUint(m.ID, 16)), zap.Error(err))
	}
}

// MemberUpdated implements apply.MembershipObserver.
func (s *Syncer) MemberUpdated(m *membership.Member) { s.MemberAdded(m) }

// MemberRemoved implements apply.MembershipObserver.
func (s *Syncer) MemberRemoved(id uint64) {
	if id != s.cfg.Self {
		s.cfg.Transport.RemovePeer(id)
		return
	}
	s.cfg.Logger.Warn("this member was removed from the cluster; stopping", zap.Duration("delay", s.cfg.RemovedDelay))
	s.cfg.AfterFunc(s.cfg.RemovedDelay, s.cfg.Removed)
}

// Sync makes the transport's peers exactly the members but this one.
func (s *Syncer) Sync(ms []*membership.Member) {
	s.Reach(ms)
	for _, id := range s.cfg.Transport.Peers() {
		if !slices.ContainsFunc(ms, func(m *membership.Member) bool { return m.ID == id }) {
			s.cfg.Transport.RemovePeer(id)
		}
	}
}
