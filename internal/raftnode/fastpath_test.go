package raftnode

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage/memory"
)

// TestSoleVoterFastPathEndsWhenVoterAdded: a sole voter applies what it
// persisted without waiting for raft's next Ready; once a second voter is
// added (and never started), nothing proposed after the conf change may be
// applied, since no quorum can commit it.
func TestSoleVoterFastPathEndsWhenVoterAdded(t *testing.T) {
	log, err := raftlog.Open(memory.New())
	if err != nil {
		t.Fatal(err)
	}
	m := startMemberOn(t, 1, []raft.Peer{{ID: 1}}, nil, log, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitLeader(ctx, t, m.node, 1)
	for i := range 20 {
		if err := m.node.Propose(ctx, []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		select {
		case e := <-m.applied:
			if want := fmt.Sprintf("v%d", i); string(e.Data) != want {
				t.Fatalf("applied %q, want %q (order must be kept, once each)", e.Data, want)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of 20 proposals applied", i)
		}
	}
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: proto.Uint64(2)}
	if err := m.node.ProposeConfChange(ctx, cc); err != nil {
		t.Fatal(err)
	}
	for len(log.ConfState().GetVoters()) != 2 {
		select {
		case <-ctx.Done():
			t.Fatal("the second voter was not added")
		case <-time.After(time.Millisecond):
		}
	}
	if err := m.node.Propose(ctx, []byte("no quorum")); err != nil {
		t.Fatal(err)
	}
	// Raft cannot commit it; a fast path that ignored the new voter would
	// apply it at once.
	window := time.NewTimer(200 * time.Millisecond)
	defer window.Stop()
	select {
	case e := <-m.applied:
		t.Fatalf("entry %d (%q) applied without a quorum of the two voters", e.GetIndex(), e.Data)
	case <-window.C:
	}
}
