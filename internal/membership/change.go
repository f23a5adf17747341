package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// The errors of a membership change, with etcd's messages.
var (
	ErrIDRemoved        = errors.New("membership: ID removed")
	ErrIDNotFound       = errors.New("membership: member not found")
	ErrIDExists         = errors.New("membership: ID exists")
	ErrPeerURLExists    = errors.New("membership: peerURL exists")
	ErrMemberNotLearner = errors.New("membership: can only promote a learner member")
	ErrTooManyLearners  = errors.New("membership: too many learner members in cluster")
	ErrBadURLs          = errors.New("membership: bad peer URLs")
)

// ConfChangeContext is the Context of a membership conf change: the member
// and, for a promotion, the flag that tells it from an addition (etcd's
// ConfigChangeContext; a plain Member, as bootstrap entries carry, decodes
// into it too).
type ConfChangeContext struct {
	Member
	IsPromote bool `json:"isPromote,omitempty"`
}

// Encode serializes c for a conf change.
func (c *ConfChangeContext) Encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("membership: encode conf change context: %v", err)) // plain struct: cannot fail
	}
	return b
}

// DecodeContext parses a conf change context.
func DecodeContext(b []byte) (*ConfChangeContext, error) {
	var c ConfChangeContext
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("membership: decode conf change context: %w", err)
	}
	return &c, nil
}

// NewMemberID is the ID etcd gives a member added at runtime: from its peer
// URLs and the time it was added, so re-adding the same URLs later gives a
// new ID.
func NewMemberID(peerURLs []string, now time.Time) uint64 {
	return ComputeMemberID(peerURLs, strconv.FormatInt(now.Unix(), 10))
}

// ParsePeerURLs checks peer URLs the way etcd's types.NewURLs does and
// returns them sorted.
func ParsePeerURLs(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("%w: no valid URLs given", ErrBadURLs)
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		s = strings.TrimSpace(s)
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadURLs, err)
		}
		switch u.Scheme {
		case "http", "https":
			if _, _, err := net.SplitHostPort(u.Host); err != nil {
				return nil, fmt.Errorf(`%w: URL address does not have the form "host:port": %s`, ErrBadURLs, s)
			}
			if u.Path != "" {
				return nil, fmt.Errorf("%w: URL must not contain a path: %s", ErrBadURLs, s)
			}
		case "unix", "unixs":
		default:
			return nil, fmt.Errorf("%w: URL scheme must be http, https, unix, or unixs: %s", ErrBadURLs, s)
		}
		out = append(out, u.String())
	}
	sort.Strings(out)
	return out, nil
}

// Validate checks a conf change against the members, as etcd's
// ValidateConfigurationChange does at apply, so every member accepts or
// refuses it alike. maxLearners bounds learners (--max-learners).
func (s *Store) Validate(cc *raftpb.ConfChange, maxLearners int) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id := cc.GetNodeId()
	if s.removed[id] {
		return ErrIDRemoved
	}
	switch cc.GetType() {
	case raftpb.ConfChangeType_ConfChangeAddNode, raftpb.ConfChangeType_ConfChangeAddLearnerNode:
		ctx, err := DecodeContext(cc.Context)
		if err != nil {
			return err
		}
		if ctx.IsPromote {
			m := s.members[id]
			if m == nil {
				return ErrIDNotFound
			}
			if !m.IsLearner {
				return ErrMemberNotLearner
			}
			return nil
		}
		if s.members[id] != nil {
			return ErrIDExists
		}
		urls := map[string]bool{}
		for _, m := range s.members {
			for _, u := range m.PeerURLs {
				urls[u] = true
			}
		}
		for _, u := range ctx.PeerURLs {
			if urls[u] {
				return ErrPeerURLExists
			}
		}
		if cc.GetType() == raftpb.ConfChangeType_ConfChangeAddLearnerNode {
			n := 0
			for _, m := range s.members {
				if m.IsLearner {
					n++
				}
			}
			if n+1 > maxLearners {
				return ErrTooManyLearners
			}
		}
	case raftpb.ConfChangeType_ConfChangeRemoveNode:
		if s.members[id] == nil {
			return ErrIDNotFound
		}
	case raftpb.ConfChangeType_ConfChangeUpdateNode:
		if s.members[id] == nil {
			return ErrIDNotFound
		}
		ctx, err := DecodeContext(cc.Context)
		if err != nil {
			return err
		}
		urls := map[string]bool{}
		for _, m := range s.members {
			if m.ID == id {
				continue
			}
			for _, u := range m.PeerURLs {
				urls[u] = true
			}
		}
		for _, u := range ctx.PeerURLs {
			if urls[u] {
				return ErrPeerURLExists
			}
		}
	default:
		return fmt.Errorf("membership: unknown conf change type %v", cc.GetType())
	}
	return nil
}

// IsRemoved reports whether id was removed from the cluster.
func (s *Store) IsRemoved(id uint64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.removed[id]
}

// ReadyToAddVoter is etcd's IsReadyToAddVotingMember: after the addition,
// the started voters (those that published their name) must still form a
// quorum, except that a started single member may grow to two.
func (s *Store) ReadyToAddVoter() bool {
	voters, started := s.voters(0)
	voters++ // the member being added
	if started == 1 && voters == 2 {
		return true
	}
	return started >= voters/2+1
}

// ReadyToRemoveVoter is etcd's IsReadyToRemoveVotingMember.
func (s *Store) ReadyToRemoveVoter(id uint64) bool {
	voters, started := s.voters(id)
	return started >= voters/2+1
}

// ReadyToPromote is etcd's IsReadyToPromoteMember.
func (s *Store) ReadyToPromote(id uint64) bool {
	voters, started := s.voters(0)
	voters++ // the learner becomes a voter
	if started == 1 && voters == 2 {
		return true
	}
	return started >= voters/2+1
}

// voters counts voters and started voters, leaving out skip.
func (s *Store) voters(skip uint64) (voters, started int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, m := range s.members {
		if m.IsLearner || m.ID == skip {
			continue
		}
		voters++
		if m.Name != "" {
			started++
		}
	}
	return voters, started
}

// The errors of the checks before a change is proposed, with etcd's
// messages (the gRPC layer maps them to etcd's codes).
var (
	ErrNotEnoughStarted = errors.New("etcdserver: re-configuration failed due to not enough started members")
	ErrUnhealthy        = errors.New("etcdserver: unhealthy cluster")
	ErrLearnerNotReady  = errors.New("etcdserver: can only promote a learner member which is in sync with leader")
	ErrNotLeader        = errors.New("etcdserver: not leader")
	// ErrRemoved stops a member that applied its own removal.
	ErrRemoved = errors.New("the member has been permanently removed from the cluster")
)
