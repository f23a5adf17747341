package membership

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/metastore/metastore/internal/storage"
)

// Member is one member of the cluster.
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

// ComputeMemberID derives a member's ID from its peer URLs and the cluster
// token, as etcd does, so that the same --initial-cluster gives every member
// the same IDs without coordination.
func ComputeMemberID(peerURLs []string, token string) uint64 {
	urls := append([]string(nil), peerURLs...)
	sort.Strings(urls)
	b := []byte(strings.Join(urls, ""))
	b = append(b, []byte(token)...)
	h := sha1.Sum(b)
	return binary.BigEndian.Uint64(h[:8])
}

// ComputeClusterID derives the cluster ID from the member IDs.
func ComputeClusterID(ids []uint64) uint64 {
	sorted := append([]uint64(nil), ids...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	b := make([]byte, 8*len(sorted))
	for i, id := range sorted {
		binary.BigEndian.PutUint64(b[8*i:], id)
	}
	h := sha1.Sum(b)
	return binary.BigEndian.Uint64(h[:8])
}

// Encode serializes m for a conf change context or the engine.
func (m *Member) Encode() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("membership: encode member: %v", err)) // plain struct: cannot fail
	}
	return b
}

// Decode parses what Encode wrote.
func Decode(b []byte) (*Member, error) {
	var m Member
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("membership: decode member: %w", err)
	}
	return &m, nil
}

func memberKey(id uint64) []byte {
	return append(append([]byte(nil), storage.PrefixMembership...), strconv.FormatUint(id, 16)...)
}

// removedPrefix keeps the IDs of removed members, which may never come
// back (hexadecimal IDs cannot start with 'r', so these keys never look
// like a member's).
var removedPrefix = append(append([]byte(nil), storage.PrefixMembership...), "removed/"...)

func removedKey(id uint64) []byte {
	return append(append([]byte(nil), removedPrefix...), strconv.FormatUint(id, 16)...)
}

// Store holds the members; writes go into the apply batch.
type Store struct {
	mu        sync.RWMutex
	clusterID uint64             // guarded by mu
	members   map[uint64]*Member // guarded by mu
	removed   map[uint64]bool    // guarded by mu
}

// Load reads the members from the engine.
func Load(r storage.Reader) (*Store, error) {
	s := &Store{members: map[uint64]*Member{}, removed: map[uint64]bool{}}
	it, err := r.NewIter(storage.IterOptions{LowerBound: storage.PrefixMembership, UpperBound: storage.PrefixEnd(storage.PrefixMembership)})
	if err != nil {
		return nil, fmt.Errorf("membership: open iterator: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if bytes.HasPrefix(it.Key(), removedPrefix) {
			id, err := strconv.ParseUint(string(it.Key()[len(removedPrefix):]), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("membership: malformed removed-member key %q", it.Key())
			}
			s.removed[id] = true
			continue
		}
		m, err := Decode(it.Value())
		if err != nil {
			return nil, fmt.Errorf("membership: key %q: %w", it.Key(), err)
		}
		s.members[m.ID] = m
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("membership: scan: %w", err)
	}
	s.clusterID = readClusterID(r)
	return s, nil
}

// Reload replaces the members with those r holds, after a Raft snapshot
// replaced the engine's contents. The cluster ID is kept when r has none.
func (s *Store) Reload(r storage.Reader) error {
	n, err := Load(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.members, s.removed = n.members, n.removed
	if n.clusterID != 0 {
		s.clusterID = n.clusterID
	}
	s.mu.Unlock()
	return nil
}

// ClusterID returns the cluster ID (0 before bootstrap).
func (s *Store) ClusterID() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.clusterID
}

// SetClusterID records the cluster ID in memory (RecordIdentity persists it).
func (s *Store) SetClusterID(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clusterID = id
}

// Members returns the members sorted by ID.
func (s *Store) Members() []*Member {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Member, 0, len(s.members))
	for _, m := range s.members {
		c := *m
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Member returns one member, or nil.
func (s *Store) Member(id uint64) *Member {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if m, ok := s.members[id]; ok {
		c := *m
		return &c
	}
	return nil
}

// IsLearner reports whether member id is a learner. It copies nothing, for
// the per-request check a learner makes (internal/member/learner).
func (s *Store) IsLearner(id uint64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.members[id]
	return ok && m.IsLearner
}

// StagePut records m in b; call Put after b committed.
func StagePut(b storage.Batch, m *Member) error { return b.Set(memberKey(m.ID), m.Encode()) }

// StageRemove deletes member id in b and records that it was removed;
// call Remove after b committed.
func StageRemove(b storage.Batch, id uint64) error {
	if err := b.Delete(memberKey(id)); err != nil {
		return err
	}
	return b.Set(removedKey(id), nil)
}

// Put records m in memory.
func (s *Store) Put(m *Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *m
	s.members[m.ID] = &c
}

// Remove forgets member id in memory.
func (s *Store) Remove(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.members, id)
	s.removed[id] = true
}
