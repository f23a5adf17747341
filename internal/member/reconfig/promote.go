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
	if err := r.policy.CheckPromote(ctx, id); err != nil {
		return nil, err
	}
	return r.configure(ctx, &raftpb.ConfChange{
		Type:    raftpb.ConfChangeType_ConfChangeAddNode.Enum(),
		NodeId:  proto.Uint64(id),
		Context: (&membership.ConfChangeContext{Member: membership.Member{ID: id}, IsPromote: true}).Encode(),
	})
}
