package server

import (
	"context"
	"fmt"
	"io"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/raftsnap"
	"github.com/metastore/metastore/internal/transport"
)

// OpenSnapshot implements transport.Snapshots: the image is read from one
// engine snapshot, and the message is rewritten to carry the applied index,
// term and ConfState recorded in that same engine snapshot, which are at or
// after the compaction point raft asked for.
func (s *Server) OpenSnapshot(m *raftpb.Message) (*raftpb.Message, transport.SnapshotImage, error) {
	img, err := raftsnap.OpenImage(s.eng)
	if err != nil {
		return nil, nil, err
	}
	if want := m.GetSnapshot().GetMetadata().GetIndex(); img.Meta.GetIndex() < want {
		img.Close()
		return nil, nil, fmt.Errorf("server: applied index %d is behind the snapshot index %d raft asked for", img.Meta.GetIndex(), want)
	}
	out := proto.Clone(m).(*raftpb.Message)
	out.Snapshot = &raftpb.Snapshot{Metadata: proto.Clone(img.Meta).(*raftpb.SnapshotMetadata)}
	return out, img, nil
}

// ReceiveSnapshot implements transport.Snapshots: it stages the image, to
// be installed by the apply loop when raft hands the snapshot over.
func (s *Server) ReceiveSnapshot(_ context.Context, m *raftpb.Message, r io.Reader) error {
	// A staged image raft accepted (its commit index reached it) but the
	// apply loop has not installed yet must not be replaced.
	if st := s.snapRecv.Staged(); st != nil && st.GetIndex() > s.applier.AppliedIndex() && s.node.Status().GetCommit() >= st.GetIndex() {
		return transport.ErrSnapshotBusy
	}
	return s.snapRecv.Stage(r, m.GetSnapshot().GetMetadata())
}

// InstallSnapshot implements apply.SnapshotInstaller. It runs on the apply
// goroutine: it replaces the engine's state with the staged image, then
// rebuilds every in-memory structure derived from the engine.
func (s *Server) InstallSnapshot(md *raftpb.SnapshotMetadata) error {
	s.lg.Info("installing a snapshot", zap.Uint64("index", md.GetIndex()), zap.Uint64("term", md.GetTerm()))
	// Background compaction writes to the engine outside the apply loop.
	s.store.StopCompaction()
	if err := s.snapRecv.Install(md, s.raftLog); err != nil {
		return err
	}
	return s.reloadState()
}

// reloadState re-reads everything kept in memory from the engine, after a
// snapshot replaced its contents.
func (s *Server) reloadState() error {
	if err := s.store.Reload(); err != nil {
		return fmt.Errorf("server: reload mvcc: %w", err)
	}
	if err := s.lessor.Reload(); err != nil {
		return fmt.Errorf("server: reload leases: %w", err)
	}
	if err := s.auth.Reload(s.eng); err != nil {
		return fmt.Errorf("server: reload auth: %w", err)
	}
	if err := s.alarms.Reload(s.eng); err != nil {
		return fmt.Errorf("server: reload alarms: %w", err)
	}
	if err := s.members.Reload(s.eng); err != nil {
		return fmt.Errorf("server: reload members: %w", err)
	}
	s.syncPeers()
	// Watchers never saw the revisions the snapshot skipped: they catch up
	// from the installed history.
	s.hub.Resync()
	return nil
}

// syncPeers makes the transport's peers the members' peer URLs.
func (s *Server) syncPeers() {
	ms := s.members.Members()
	for _, m := range ms {
		if m.ID == s.memberID {
			continue
		}
		if err := s.transport.AddPeer(m.ID, m.PeerURLs); err != nil {
			s.lg.Warn("cannot reach member", zap.String("member-id", fmt.Sprintf("%x", m.ID)), zap.Error(err))
		}
	}
	for _, id := range s.transport.Peers() {
		if !slices.ContainsFunc(ms, func(m *membership.Member) bool { return m.ID == id }) {
			s.transport.RemovePeer(id)
		}
	}
}
