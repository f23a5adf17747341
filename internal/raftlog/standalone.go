package raftlog

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
)

// Standalone reports what RewriteStandalone changed.
type Standalone struct {
	Dropped  uint64   // uncommitted entries discarded
	Removed  []uint64 // members whose removal was appended, sorted
	Promoted bool     // this member was a learner: its promotion was appended
	Commit   uint64   // the commit index afterwards: the last index of the log
}

// RewriteStandalone prepares the log of member self for a restart as the
// only voter of its cluster (--force-new-cluster), as etcd's
// restartAsStandaloneNode does: entries after the commit index are dropped,
// and conf changes removing every other member (and promoting self if it
// is a learner) are appended and committed at once, at the current term.
//
// The changes go through the log rather than straight into the ConfState
// and the member list so that they are applied after every committed entry
// not applied yet (one of which may add a member), by the applier's usual
// path, which records the removed IDs and the ConfState with the applied
// index. applied is the applied index; promote is the conf change context
// of self's promotion, used only if self is a learner.
//
// It must run before Open, and writes everything in one synced batch: a
// crash leaves either the old log or the new one, and running it again on
// the new one appends nothing.
func RewriteStandalone(eng storage.Engine, self, applied uint64, promote []byte) (_ *Standalone, err error) {
	s, err := Open(eng)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	hs, cs := s.HardState(), s.ConfState()
	if len(cs.GetVotersOutgoing()) > 0 || len(cs.GetLearnersNext()) > 0 {
		return nil, fmt.Errorf("raftlog: cannot force a new cluster from a joint configuration %v", cs)
	}
	snapIndex, snapTerm := s.wal.Compacted()
	// Applied entries are committed even if the HardState saying so did not
	// reach the disk.
	commit := max(hs.GetCommit(), applied, snapIndex)
	last := s.wal.LastIndex()
	if commit > last {
		return nil, fmt.Errorf("%w: commit index %d is beyond the last index %d", ErrCorrupt, commit, last)
	}

	// The configuration raft will reach once every committed entry is
	// applied: the ConfState as of the applied index, then the conf
	// changes committed after it.
	voters, learners := map[uint64]bool{}, map[uint64]bool{}
	for _, id := range cs.GetVoters() {
		voters[id] = true
	}
	for _, id := range cs.GetLearners() {
		learners[id] = true
	}
	change := func(t raftpb.ConfChangeType, id uint64) {
		switch t {
		case raftpb.ConfChangeType_ConfChangeAddNode:
			voters[id] = true
			delete(learners, id)
		case raftpb.ConfChangeType_ConfChangeAddLearnerNode:
			learners[id] = true
			delete(voters, id)
		case raftpb.ConfChangeType_ConfChangeRemoveNode:
			delete(voters, id)
			delete(learners, id)
		}
	}
	for lo := max(applied, snapIndex) + 1; lo <= commit; {
		ents, err := s.wal.Entries(lo, commit+1, 4<<20)
		if err != nil {
			return nil, fmt.Errorf("raftlog: read entries from %d: %w", lo, err)
		}
		for _, e := range ents {
			switch e.GetType() {
			case raftpb.EntryType_EntryConfChange:
				var cc raftpb.ConfChange
				if err := proto.Unmarshal(e.Data, &cc); err != nil {
					return nil, fmt.Errorf("%w: entry %d: decode conf change: %v", ErrCorrupt, e.GetIndex(), err)
				}
				change(cc.GetType(), cc.GetNodeId())
			case raftpb.EntryType_EntryConfChangeV2:
				var cc raftpb.ConfChangeV2
				if err := proto.Unmarshal(e.Data, &cc); err != nil {
					return nil, fmt.Errorf("%w: entry %d: decode conf change: %v", ErrCorrupt, e.GetIndex(), err)
				}
				for _, c := range cc.GetChanges() {
					change(c.GetType(), c.GetNodeId())
				}
			}
		}
		lo += uint64(len(ents))
	}
	res := &Standalone{Dropped: last - commit}

	var ccs []*raftpb.ConfChange
	for id := range voters {
		if id != self {
			res.Removed = append(res.Removed, id)
		}
	}
	for id := range learners {
		if id != self {
			res.Removed = append(res.Removed, id)
		}
	}
	slices.Sort(res.Removed)
	for _, id := range res.Removed {
		ccs = append(ccs, &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id)})
	}
	switch {
	case voters[self]:
	case learners[self]:
		res.Promoted = true
		ccs = append(ccs, &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: proto.Uint64(self), Context: promote})
	default:
		return nil, fmt.Errorf("raftlog: member %x is not in the cluster configuration (voters %v, learners %v): cannot force a new cluster from its data",
			self, cs.GetVoters(), cs.GetLearners())
	}

	var appended []*raftpb.Entry
	idx := commit
	for _, cc := range ccs {
		data, err := proto.Marshal(cc)
		if err != nil {
			return nil, fmt.Errorf("raftlog: encode conf change: %w", err)
		}
		idx++
		appended = append(appended, &raftpb.Entry{Term: proto.Uint64(hs.GetTerm()), Index: proto.Uint64(idx), Type: raftpb.EntryType_EntryConfChange.Enum(), Data: data})
	}
	res.Commit = idx
	h := proto.Clone(hs).(*raftpb.HardState)
	h.Commit = proto.Uint64(idx)
	// One synced write: an append at commit+1 replaces every entry after
	// the commit index. With nothing to append, the uncommitted tail is
	// dropped by writing the entry at the commit index again (or, with an
	// empty log, by resetting it at its compaction point).
	switch {
	case len(appended) > 0 || res.Dropped == 0:
		err = s.wal.Save(h, appended, true)
	case commit > snapIndex:
		var at []*raftpb.Entry
		if at, err = s.wal.Entries(commit, commit+1, math.MaxUint64); err == nil {
			err = s.wal.Save(h, at, true)
		}
	default:
		err = s.wal.Reset(snapIndex, snapTerm, h)
	}
	if err != nil {
		return nil, fmt.Errorf("raftlog: write standalone rewrite: %w", err)
	}
	return res, nil
}
