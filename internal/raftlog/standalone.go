package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
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
func RewriteStandalone(eng storage.Engine, self, applied uint64, promote []byte) (*Standalone, error) {
	hs, err := ReadHardState(eng)
	if err != nil {
		return nil, err
	}
	cs, err := ReadConfState(eng)
	if err != nil {
		return nil, err
	}
	if len(cs.GetVotersOutgoing()) > 0 || len(cs.GetLearnersNext()) > 0 {
		return nil, fmt.Errorf("raftlog: cannot force a new cluster from a joint configuration %v", cs)
	}
	var snapIndex uint64
	if v, err := eng.Get(storage.KeyRaftSnapshot); err == nil {
		var md raftpb.SnapshotMetadata
		if err := decodeProto(storage.KeyRaftSnapshot, v, &md); err != nil {
			return nil, err
		}
		snapIndex = md.GetIndex()
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("raftlog: read snapshot metadata: %w", err)
	}
	// Applied entries are committed even if the HardState saying so did not
	// reach the disk.
	commit := max(hs.GetCommit(), applied, snapIndex)

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
	from := max(applied, snapIndex) + 1
	it, err := eng.NewIter(storage.IterOptions{
		LowerBound: storage.RaftEntryKey(from),
		UpperBound: storage.PrefixEnd(storage.PrefixRaftEntry),
	})
	if err != nil {
		return nil, fmt.Errorf("raftlog: open iterator: %w", err)
	}
	defer it.Close()
	last := from - 1
	for ok := it.First(); ok; ok = it.Next() {
		idx := binary.BigEndian.Uint64(it.Key()[len(storage.PrefixRaftEntry):])
		if idx != last+1 {
			return nil, fmt.Errorf("%w: log gap: expected index %d, found %d", ErrCorrupt, last+1, idx)
		}
		last = idx
		if idx > commit {
			continue
		}
		e, err := decodeEntry(it.Key(), it.Value(), idx)
		if err != nil {
			return nil, err
		}
		switch e.GetType() {
		case raftpb.EntryType_EntryConfChange:
			var cc raftpb.ConfChange
			if err := proto.Unmarshal(e.Data, &cc); err != nil {
				return nil, fmt.Errorf("%w: entry %d: decode conf change: %v", ErrCorrupt, idx, err)
			}
			change(cc.GetType(), cc.GetNodeId())
		case raftpb.EntryType_EntryConfChangeV2:
			var cc raftpb.ConfChangeV2
			if err := proto.Unmarshal(e.Data, &cc); err != nil {
				return nil, fmt.Errorf("%w: entry %d: decode conf change: %v", ErrCorrupt, idx, err)
			}
			for _, c := range cc.GetChanges() {
				change(c.GetType(), c.GetNodeId())
			}
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("raftlog: scan log: %w", err)
	}
	if commit > last {
		return nil, fmt.Errorf("%w: commit index %d is beyond the last index %d", ErrCorrupt, commit, last)
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

	b := eng.NewBatch()
	defer b.Close()
	if res.Dropped > 0 {
		if err := b.DeleteRange(storage.RaftEntryKey(commit+1), storage.PrefixEnd(storage.PrefixRaftEntry)); err != nil {
			return nil, fmt.Errorf("raftlog: drop uncommitted entries: %w", err)
		}
	}
	idx := commit
	for _, cc := range ccs {
		data, err := proto.Marshal(cc)
		if err != nil {
			return nil, fmt.Errorf("raftlog: encode conf change: %w", err)
		}
		idx++
		e := &raftpb.Entry{Term: proto.Uint64(hs.GetTerm()), Index: proto.Uint64(idx), Type: raftpb.EntryType_EntryConfChange.Enum(), Data: data}
		if err := b.Set(storage.RaftEntryKey(idx), encodeEntry(e)); err != nil {
			return nil, fmt.Errorf("raftlog: stage entry %d: %w", idx, err)
		}
	}
	res.Commit = idx
	h := proto.Clone(hs).(*raftpb.HardState)
	h.Commit = proto.Uint64(idx)
	hv, err := encodeProto(h)
	if err != nil {
		return nil, fmt.Errorf("raftlog: encode hard state: %w", err)
	}
	if err := b.Set(storage.KeyRaftHardState, hv); err != nil {
		return nil, fmt.Errorf("raftlog: stage hard state: %w", err)
	}
	if err := b.Commit(true); err != nil {
		return nil, fmt.Errorf("raftlog: commit standalone rewrite: %w", err)
	}
	return res, nil
}
