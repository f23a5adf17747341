package raftlog

import (
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

func ccEnt(t *testing.T, index, term uint64, typ raftpb.ConfChangeType, id uint64) *raftpb.Entry {
	t.Helper()
	data, err := proto.Marshal(&raftpb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(id)})
	if err != nil {
		t.Fatal(err)
	}
	return &raftpb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(term), Type: raftpb.EntryType_EntryConfChange.Enum(), Data: data}
}

// standaloneLog builds the log of member 1 of {1,2,3}: entries 1..10 at
// term 2, committed up to commit, applied up to 6, with entry 7 (committed,
// not applied) adding voter 4.
func standaloneLog(t *testing.T, commit uint64, cs *raftpb.ConfState) storage.Engine {
	t.Helper()
	eng := memory.New()
	s := mustOpen(t, eng)
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 10; i++ {
		if i == 7 {
			ents = append(ents, ccEnt(t, i, 2, raftpb.ConfChangeType_ConfChangeAddNode, 4))
			continue
		}
		ents = append(ents, ent(i, 2, "x"))
	}
	if err := s.Save(hs(2, commit), ents, true); err != nil {
		t.Fatal(err)
	}
	b := eng.NewBatch()
	defer b.Close()
	if err := StageConfState(b, cs); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	return eng
}

func confChanges(t *testing.T, ents []*raftpb.Entry) []string {
	t.Helper()
	var out []string
	for _, e := range ents {
		if e.GetType() != raftpb.EntryType_EntryConfChange {
			continue
		}
		var cc raftpb.ConfChange
		if err := proto.Unmarshal(e.Data, &cc); err != nil {
			t.Fatal(err)
		}
		out = append(out, cc.GetType().String()+" "+string(rune('0'+cc.GetNodeId()))+" ctx="+string(cc.Context))
	}
	return out
}

func TestRewriteStandalone(t *testing.T) {
	eng := standaloneLog(t, 8, &raftpb.ConfState{Voters: []uint64{1, 2, 3}})
	res, err := RewriteStandalone(eng, 1, 6, []byte("promote"))
	if err != nil {
		t.Fatal(err)
	}
	// Entries 9 and 10 were not committed; 4 was added by a committed entry
	// not applied yet, so it is removed too.
	if res.Dropped != 2 || !slices.Equal(res.Removed, []uint64{2, 3, 4}) || res.Promoted || res.Commit != 11 {
		t.Fatalf("result %+v", res)
	}
	s := mustOpen(t, eng)
	if li, _ := s.LastIndex(); li != 11 {
		t.Fatalf("last index %d, want 11", li)
	}
	h := s.HardState()
	if h.GetCommit() != 11 || h.GetTerm() != 2 || h.GetVote() != 1 {
		t.Fatalf("hard state %v", h)
	}
	ents, err := s.Entries(7, 12, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	got := confChanges(t, ents)
	want := []string{"ConfChangeAddNode 4 ctx=", "ConfChangeRemoveNode 2 ctx=", "ConfChangeRemoveNode 3 ctx=", "ConfChangeRemoveNode 4 ctx="}
	if !slices.Equal(got, want) {
		t.Fatalf("conf changes %q, want %q", got, want)
	}
	for _, e := range ents[2:] {
		if e.GetTerm() != 2 {
			t.Fatalf("entry %d at term %d, want the current term 2", e.GetIndex(), e.GetTerm())
		}
	}

	// Again (a crash before the removals were applied, or the flag left
	// on): nothing more to do.
	res, err = RewriteStandalone(eng, 1, 6, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped != 0 || len(res.Removed) != 0 || res.Commit != 11 {
		t.Fatalf("second rewrite %+v", res)
	}
	if li, _ := mustOpen(t, eng).LastIndex(); li != 11 {
		t.Fatalf("last index %d after the second rewrite", li)
	}
}

func TestRewriteStandaloneLearnerAndAppliedAheadOfCommit(t *testing.T) {
	// The commit record lags the applied index (it is not synced on its
	// own): applied entries are committed all the same.
	eng := standaloneLog(t, 3, &raftpb.ConfState{Voters: []uint64{2, 3}, Learners: []uint64{1}})
	res, err := RewriteStandalone(eng, 1, 8, []byte("promote-1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped != 2 || !slices.Equal(res.Removed, []uint64{2, 3}) || !res.Promoted || res.Commit != 11 {
		t.Fatalf("result %+v", res)
	}
	ents, err := mustOpen(t, eng).Entries(9, 12, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ConfChangeRemoveNode 2 ctx=", "ConfChangeRemoveNode 3 ctx=", "ConfChangeAddNode 1 ctx=promote-1"}
	if got := confChanges(t, ents); !slices.Equal(got, want) {
		t.Fatalf("conf changes %q, want %q", got, want)
	}
}

func TestRewriteStandaloneRefusesUnknownMember(t *testing.T) {
	eng := standaloneLog(t, 8, &raftpb.ConfState{Voters: []uint64{2, 3}})
	before, _ := ReadHardState(eng)
	_, err := RewriteStandalone(eng, 1, 6, nil)
	if err == nil || !strings.Contains(err.Error(), "not in the cluster configuration") {
		t.Fatalf("err = %v", err)
	}
	after, _ := ReadHardState(eng)
	if !proto.Equal(before, after) {
		t.Fatalf("a refused rewrite changed the hard state: %v -> %v", before, after)
	}
}

// TestRewriteStandaloneRaftElectsAlone restarts raft on a rewritten log:
// once the committed conf changes are applied it is the only voter and
// wins an election without any peer.
func TestRewriteStandaloneRaftElectsAlone(t *testing.T) {
	eng := standaloneLog(t, 8, &raftpb.ConfState{Voters: []uint64{1, 2, 3}})
	if _, err := RewriteStandalone(eng, 1, 6, nil); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, eng)
	rn, err := raft.NewRawNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: s, Applied: 6,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 64})
	if err != nil {
		t.Fatal(err)
	}
	campaigned := false
	for i := 0; i < 100 && rn.Status().RaftState != raft.StateLeader; i++ {
		if !rn.HasReady() {
			if campaigned {
				t.Fatalf("no progress; status %+v", rn.Status())
			}
			if err := rn.Campaign(); err != nil {
				t.Fatal(err)
			}
			campaigned = true
			continue
		}
		rd := rn.Ready()
		if err := s.Save(rd.HardState, rd.Entries, true); err != nil {
			t.Fatal(err)
		}
		for _, e := range rd.CommittedEntries {
			if e.GetType() == raftpb.EntryType_EntryConfChange {
				var cc raftpb.ConfChange
				if err := proto.Unmarshal(e.Data, &cc); err != nil {
					t.Fatal(err)
				}
				s.SetConfState(rn.ApplyConfChange(&cc))
			}
		}
		rn.Advance(rd)
	}
	if st := rn.Status(); st.RaftState != raft.StateLeader || st.GetTerm() != 3 {
		t.Fatalf("status %+v, want leader at term 3", st)
	}
	if got := s.ConfState().GetVoters(); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("voters %v, want [1]", got)
	}
}
