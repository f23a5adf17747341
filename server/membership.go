package server

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/backend"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/storage"
)

const (
	// healthInterval is how long every peer must have been reachable for
	// a strict reconfiguration check to pass (etcd's HealthInterval).
	healthInterval = 5 * time.Second
	// learnerReadyPercent is how close to the leader's log a learner must
	// be to be promoted (etcd's readyPercentThreshold).
	learnerReadyPercent = 0.9

	// pathMembers lists the cluster for a member joining it
	// (--initial-cluster-state=existing); pathPromote runs a promotion on
	// the leader, the only member that knows whether a learner caught up.
	pathMembers = "/raft/members"
	pathPromote = "/raft/members/promote"
)

// MemberAdded implements apply.MembershipObserver.
func (s *Server) MemberAdded(m *membership.Member) {
	if m.ID == s.memberID {
		return
	}
	if err := s.transport.AddPeer(m.ID, m.PeerURLs); err != nil {
		s.lg.Warn("cannot reach the added member", zap.String("member-id", idHex(m.ID)), zap.Error(err))
	}
}

// MemberUpdated implements apply.MembershipObserver.
func (s *Server) MemberUpdated(m *membership.Member) { s.MemberAdded(m) }

// MemberRemoved implements apply.MembershipObserver. A member that applied
// its own removal stops, after a short delay that lets the commit reach
// the others, as etcd does.
func (s *Server) MemberRemoved(id uint64) {
	if id != s.memberID {
		s.transport.RemovePeer(id)
		return
	}
	delay := 10 * s.cfg.Raft.HeartbeatInterval
	s.lg.Warn("this member was removed from the cluster; stopping", zap.Duration("delay", delay))
	time.AfterFunc(delay, func() { s.fail(membership.ErrRemoved) })
}

// AddMember implements rpc.ClusterBackend (etcd's AddMember).
func (s *Server) AddMember(ctx context.Context, peerURLs []string, isLearner bool) (*membership.Member, []*membership.Member, error) {
	urls, err := membership.ParsePeerURLs(peerURLs)
	if err != nil {
		return nil, nil, err
	}
	m := membership.Member{ID: membership.NewMemberID(urls, time.Now()), PeerURLs: urls, IsLearner: isLearner}
	if s.cfg.Cluster.StrictReconfigCheck {
		if !isLearner && !s.members.ReadyToAddVoter() {
			return nil, nil, membership.ErrNotEnoughStarted
		}
		if !s.connectedFullySince(time.Now().Add(-healthInterval)) {
			return nil, nil, membership.ErrUnhealthy
		}
	}
	cc := &raftpb.ConfChange{
		Type:    raftpb.ConfChangeType_ConfChangeAddNode.Enum(),
		NodeId:  proto.Uint64(m.ID),
		Context: (&membership.ConfChangeContext{Member: m}).Encode(),
	}
	if isLearner {
		cc.Type = raftpb.ConfChangeType_ConfChangeAddLearnerNode.Enum()
	}
	ms, err := s.configure(ctx, cc)
	if err != nil {
		return nil, nil, err
	}
	return &m, ms, nil
}

// RemoveMember implements rpc.ClusterBackend (etcd's RemoveMember).
func (s *Server) RemoveMember(ctx context.Context, id uint64) ([]*membership.Member, error) {
	if s.cfg.Cluster.StrictReconfigCheck {
		if err := s.mayRemoveMember(id); err != nil {
			return nil, err
		}
	}
	return s.configure(ctx, &raftpb.ConfChange{
		Type:   raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(),
		NodeId: proto.Uint64(id),
	})
}

func (s *Server) mayRemoveMember(id uint64) error {
	if m := s.members.Member(id); m != nil && m.IsLearner {
		return nil // a learner is no part of any quorum
	}
	if !s.members.ReadyToRemoveVoter(id) {
		return membership.ErrNotEnoughStarted
	}
	// A member that is down is no part of the active quorum either.
	if id != s.memberID && s.transport.ActiveSince(id).IsZero() {
		return nil
	}
	voters := s.voters()
	since := time.Now().Add(-healthInterval)
	active := 0
	for _, v := range voters {
		if v == s.memberID || s.connectedSince(v, since) {
			active++
		}
	}
	if active-1 < 1+(len(voters)-1)/2 {
		return membership.ErrUnhealthy
	}
	return nil
}

// UpdateMember implements rpc.ClusterBackend (etcd's UpdateMember).
func (s *Server) UpdateMember(ctx context.Context, id uint64, peerURLs []string) ([]*membership.Member, error) {
	urls, err := membership.ParsePeerURLs(peerURLs)
	if err != nil {
		return nil, err
	}
	return s.configure(ctx, &raftpb.ConfChange{
		Type:    raftpb.ConfChangeType_ConfChangeUpdateNode.Enum(),
		NodeId:  proto.Uint64(id),
		Context: (&membership.ConfChangeContext{Member: membership.Member{ID: id, PeerURLs: urls}}).Encode(),
	})
}

// PromoteMember implements rpc.ClusterBackend (etcd's PromoteMember): the
// leader decides, so a follower forwards the call to it.
func (s *Server) PromoteMember(ctx context.Context, id uint64) ([]*membership.Member, error) {
	ms, err := s.promoteMember(ctx, id)
	if !errors.Is(err, membership.ErrNotLeader) {
		return ms, err
	}
	lead := s.node.Leader()
	if lead == 0 {
		return nil, backend.ErrNoLeader
	}
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout())
	defer cancel()
	resp, err := s.transport.Do(ctx, lead, http.MethodPost, pathPromote, []byte(strconv.FormatUint(id, 16)))
	if err != nil {
		return nil, fmt.Errorf("server: forward promotion to the leader: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("server: forward promotion to the leader: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, promoteError(strings.TrimSpace(string(body)))
	}
	return s.members.Members(), nil
}

// promoteErrors travel from the leader by message.
var promoteErrors = []error{
	membership.ErrIDNotFound, membership.ErrIDRemoved, membership.ErrMemberNotLearner, membership.ErrLearnerNotReady,
	membership.ErrNotEnoughStarted, membership.ErrNotLeader, backend.ErrTimeout, backend.ErrStopped,
}

func promoteError(msg string) error {
	for _, e := range promoteErrors {
		if msg == e.Error() {
			return e
		}
	}
	return fmt.Errorf("server: promotion on the leader failed: %s", msg)
}

func (s *Server) servePromote(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64))
	id, perr := strconv.ParseUint(strings.TrimSpace(string(body)), 16, 64)
	if err != nil || perr != nil {
		http.Error(w, "want a member ID", http.StatusBadRequest)
		return
	}
	if _, err := s.promoteMember(r.Context(), id); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) promoteMember(ctx context.Context, id uint64) ([]*membership.Member, error) {
	if err := s.learnerReady(ctx, id); err != nil {
		return nil, err
	}
	if s.cfg.Cluster.StrictReconfigCheck && !s.members.ReadyToPromote(id) {
		return nil, membership.ErrNotEnoughStarted
	}
	return s.configure(ctx, &raftpb.ConfChange{
		Type:    raftpb.ConfChangeType_ConfChangeAddNode.Enum(),
		NodeId:  proto.Uint64(id),
		Context: (&membership.ConfChangeContext{Member: membership.Member{ID: id}, IsPromote: true}).Encode(),
	})
}

// learnerReady is etcd's isLearnerReady: only the leader knows how far a
// learner's log is; it must be within 90% of the leader's.
func (s *Server) learnerReady(ctx context.Context, id uint64) error {
	// etcd first waits for the local state to catch up with the commit.
	if err := s.backend.LinearizableBarrier(ctx); err != nil {
		return err
	}
	st := s.node.Status()
	if st.Progress == nil {
		return membership.ErrNotLeader
	}
	pr, ok := st.Progress[id]
	if !ok {
		return membership.ErrIDNotFound
	}
	if float64(pr.Match) < float64(st.Progress[s.memberID].Match)*learnerReadyPercent {
		return membership.ErrLearnerNotReady
	}
	return nil
}

// confChangeRetry is how long configure waits for a proposed change
// before proposing it again: raft's leader turns a conf change into an
// empty entry while an earlier one is not applied yet on it, and nothing
// tells the proposer. Proposing twice is harmless: the second application
// fails validation (the ID exists, was removed, is no learner any more)
// and only the first outcome reaches the waiter.
const confChangeRetry = time.Second

// configure proposes cc and waits until this member applied it; it returns
// the members after the change (etcd's configure).
func (s *Server) configure(ctx context.Context, cc *raftpb.ConfChange) ([]*membership.Member, error) {
	id := s.backend.NextID()
	cc.Id = proto.Uint64(id)
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout())
	defer cancel()
	ch := s.wait.Register(id)
	defer s.wait.Cancel(id)
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case res := <-ch:
			if res.Err != nil {
				return nil, res.Err
			}
			return s.members.Members(), nil
		case <-retry.C:
			if err := s.node.ProposeConfChange(ctx, cc); err != nil {
				if ctx.Err() != nil {
					return nil, backend.ErrTimeout
				}
				return nil, fmt.Errorf("server: propose membership change: %w", err)
			}
			retry.Reset(confChangeRetry)
		case <-ctx.Done():
			return nil, backend.ErrTimeout
		case <-s.node.Done():
			return nil, backend.ErrStopped
		}
	}
}

func (s *Server) voters() []uint64 {
	var out []uint64
	for _, m := range s.members.Members() {
		if !m.IsLearner {
			out = append(out, m.ID)
		}
	}
	return out
}

func (s *Server) connectedSince(id uint64, since time.Time) bool {
	t := s.transport.ActiveSince(id)
	return !t.IsZero() && !t.After(since)
}

// connectedFullySince is etcd's isConnectedFullySince over the voters.
func (s *Server) connectedFullySince(since time.Time) bool {
	for _, id := range s.voters() {
		if id != s.memberID && !s.connectedSince(id, since) {
			s.lg.Warn("rejecting a membership change: a voting member has not been reachable long enough",
				zap.String("member-id", idHex(id)), zap.Time("active-since", s.transport.ActiveSince(id)), zap.Duration("required", healthInterval))
			return false
		}
	}
	return true
}

// clusterInfo is what pathMembers answers.
type clusterInfo struct {
	ClusterID string               `json:"clusterID"`
	Members   []*membership.Member `json:"members"`
}

func (s *Server) serveMembers(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(clusterInfo{ClusterID: idHex(s.members.ClusterID()), Members: s.members.Members()})
}

// fetchCluster asks the peers named in --initial-cluster for the cluster
// this member joins, as etcd does with --initial-cluster-state=existing.
func (s *Server) fetchCluster(self []string) (uint64, []*membership.Member, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	if s.peerTLS != nil {
		client.Transport = &http.Transport{TLSClientConfig: s.peerTLS.Client, Proxy: nil}
	} else {
		client.Transport = &http.Transport{Proxy: nil}
	}
	defer client.CloseIdleConnections()
	var errs []error
	for name, urls := range s.cfg.Cluster.InitialMembers {
		for _, u := range urlStrings(urls) {
			if slices.Contains(self, u) {
				continue
			}
			resp, err := client.Get(strings.TrimSuffix(u, "/") + pathMembers)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): %w", name, u, err))
				continue
			}
			var ci clusterInfo
			err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&ci)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				errs = append(errs, fmt.Errorf("%s (%s): status %d: %v", name, u, resp.StatusCode, err))
				continue
			}
			cid, err := strconv.ParseUint(ci.ClusterID, 16, 64)
			if err != nil || cid == 0 {
				errs = append(errs, fmt.Errorf("%s (%s): bad cluster ID %q", name, u, ci.ClusterID))
				continue
			}
			return cid, ci.Members, nil
		}
	}
	return 0, nil, fmt.Errorf("server: cannot fetch the cluster from the peers in --initial-cluster: %w", errors.Join(errs...))
}

// joinExisting records the identity of a member added with MemberAdd that
// starts for the first time: its ID is the one the cluster gave its peer
// URLs. It returns the other members, to reach until the log or a snapshot
// brings the member list.
func (s *Server) joinExisting() ([]*membership.Member, error) {
	self, err := membership.ParsePeerURLs(urlStrings(s.cfg.Member.AdvertisePeerURLs))
	if err != nil {
		return nil, fmt.Errorf("server: --initial-advertise-peer-urls: %w", err)
	}
	cid, ms, err := s.fetchCluster(self)
	if err != nil {
		return nil, err
	}
	var me *membership.Member
	for _, m := range ms {
		if slices.Equal(m.PeerURLs, self) {
			me = m
		}
	}
	if me == nil {
		return nil, fmt.Errorf("server: the cluster has no member with peer URLs %v; add it with 'etcdctl member add' first", self)
	}
	s.memberID = me.ID
	b := s.eng.NewBatch()
	defer b.Close()
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, me.ID)
	if err := b.Set(storage.KeyMemberID, v); err != nil {
		return nil, err
	}
	if err := s.members.StageClusterID(b, cid); err != nil {
		return nil, err
	}
	if err := b.Commit(true); err != nil {
		return nil, fmt.Errorf("server: record member id: %w", err)
	}
	s.members.SetClusterID(cid)
	s.lg.Info("joining an existing cluster", zap.String("member-id", idHex(me.ID)), zap.String("cluster-id", idHex(cid)))
	return ms, nil
}

func idHex(id uint64) string { return strconv.FormatUint(id, 16) }
