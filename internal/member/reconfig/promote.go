package reconfig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/backend"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/peerapi"
)

// PromoteMember is etcd's PromoteMember: the leader decides, so a follower
// forwards the call to it.
func (r *Reconfigurer) PromoteMember(ctx context.Context, id uint64) ([]*membership.Member, error) {
	ms, err := r.promote(ctx, id)
	if !errors.Is(err, membership.ErrNotLeader) {
		return ms, err
	}
	lead := r.cfg.Node.Leader()
	if lead == 0 {
		return nil, backend.ErrNoLeader
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	resp, err := r.cfg.Peers.Do(ctx, lead, http.MethodPost, peerapi.PathPromote, []byte(strconv.FormatUint(id, 16)))
	if err != nil {
		return nil, fmt.Errorf("reconfig: forward promotion to the leader: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("reconfig: forward promotion to the leader: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, promoteError(strings.TrimSpace(string(body)))
	}
	return r.cfg.Members.Members(), nil
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
	return fmt.Errorf("reconfig: promotion on the leader failed: %s", msg)
}

// ServePromote is the leader's end of a forwarded promotion
// (peerapi.PathPromote).
func (r *Reconfigurer) ServePromote(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 64))
	id, perr := strconv.ParseUint(strings.TrimSpace(string(body)), 16, 64)
	if err != nil || perr != nil {
		http.Error(w, "want a member ID", http.StatusBadRequest)
		return
	}
	if _, err := r.promote(req.Context(), id); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (r *Reconfigurer) promote(ctx context.Context, id uint64) ([]*membership.Member, error) {
	if err := r.learnerReady(ctx, id); err != nil {
		return nil, err
	}
	if r.cfg.StrictReconfigCheck && !r.cfg.Members.ReadyToPromote(id) {
		return nil, membership.ErrNotEnoughStarted
	}
	return r.configure(ctx, &raftpb.ConfChange{
		Type:    raftpb.ConfChangeType_ConfChangeAddNode.Enum(),
		NodeId:  proto.Uint64(id),
		Context: (&membership.ConfChangeContext{Member: membership.Member{ID: id}, IsPromote: true}).Encode(),
	})
}

// learnerReady is etcd's isLearnerReady: only the leader knows how far a
// learner's log is; it must be within 90% of the leader's.
func (r *Reconfigurer) learnerReady(ctx context.Context, id uint64) error {
	// etcd first waits for the local state to catch up with the commit.
	if err := r.cfg.Backend.LinearizableBarrier(ctx); err != nil {
		return err
	}
	st := r.cfg.Node.Status()
	if st.Progress == nil {
		return membership.ErrNotLeader
	}
	pr, ok := st.Progress[id]
	if !ok {
		return membership.ErrIDNotFound
	}
	if float64(pr.Match) < float64(st.Progress[r.cfg.Self].Match)*learnerReadyPercent {
		return membership.ErrLearnerNotReady
	}
	return nil
}
