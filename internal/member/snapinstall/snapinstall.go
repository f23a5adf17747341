package snapinstall

import (
	"context"
	"fmt"
	"io"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/raftsnap"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/transport"
)

// MVCC is the key-value store: its background compaction writes to the
// engine outside the apply loop, so it stops before an installation.
type MVCC interface {
	StopCompaction()
	Reload() error
}

// EngineState is state read from the engine (auth, alarms).
type EngineState interface {
	Reload(r storage.Reader) error
}

// Config wires an Installer. SyncPeers, Applied and Commit are called at
// call time, so the transport, the applier and the raft node may be
// created after the Installer.
type Config struct {
	Engine   storage.Engine
	Receiver *raftsnap.Receiver
	RaftLog  *raftlog.Storage
	MVCC     MVCC
	Leases   interface{ Reload() error }
	Auth     EngineState
	Alarms   EngineState
	Members  *membership.Store
	// Watch lets watchers catch up on the revisions a snapshot skipped.
	Watch interface{ Resync() }
	// SyncPeers makes the transport's peers the reloaded member list.
	SyncPeers func(ms []*membership.Member)
	Applied   func() uint64 // the applier's applied index
	Commit    func() uint64 // raft's commit index
	Logger    *zap.Logger
}

// Installer implements transport.Snapshots and apply.SnapshotInstaller.
type Installer struct {
	cfg Config
	lg  *zap.Logger
}

// New returns an Installer.
func New(cfg Config) *Installer {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Installer{cfg: cfg, lg: cfg.Logger}
}

// OpenSnapshot implements transport.Snapshots: the image is read from one
// engine snapshot, and the message is rewritten to carry the applied index,
// term and ConfState recorded in that same engine snapshot, which are at or
// after the compaction point raft asked for.
func (in *Installer) OpenSnapshot(m *raftpb.Message) (*raftpb.Message, transport.SnapshotImage, error) {
	img, err := raftsnap.OpenImage(in.cfg.Engine)
	if err != nil {
		return nil, nil, err
	}
	if want := m.GetSnapshot().GetMetadata().GetIndex(); img.Meta.GetIndex() < want {
		img.Close()
		return nil, nil, fmt.Errorf("snapinstall: applied index %d is behind the snapshot index %d raft asked for", img.Meta.GetIndex(), want)
	}
	out := proto.Clone(m).(*raftpb.Message)
	out.Snapshot = &raftpb.Snapshot{Metadata: proto.Clone(img.Meta).(*raftpb.SnapshotMetadata)}
	return out, img, nil
}

// ReceiveSnapshot implements transport.Snapshots: it stages the image, to
// be installed by the apply loop when raft hands the snapshot over.
func (in *Installer) ReceiveSnapshot(_ context.Context, m *raftpb.Message, r io.Reader) error {
	// A staged image raft accepted (its commit index reached it) but the
	// apply loop has not installed yet must not be replaced.
	if st := in.cfg.Receiver.Staged(); st != nil && st.GetIndex() > in.cfg.Applied() && in.cfg.Commit() >= st.GetIndex() {
		return transport.ErrSnapshotBusy
	}
	return in.cfg.Receiver.Stage(r, m.GetSnapshot().GetMetadata())
}

// InstallSnapshot implements apply.SnapshotInstaller. It runs on the apply
// goroutine: it replaces the engine's state with the staged image, then
// rebuilds every in-memory structure derived from the engine.
func (in *Installer) InstallSnapshot(md *raftpb.SnapshotMetadata) error {
	in.lg.Info("installing a snapshot", zap.Uint64("index", md.GetIndex()), zap.Uint64("term", md.GetTerm()))
	in.cfg.MVCC.StopCompaction()
	start := time.Now()
	if err := in.cfg.Receiver.Install(md, in.cfg.RaftLog); err != nil {
		return err
	}
	installed := time.Now()
	if err := in.reload(); err != nil {
		return err
	}
	// The two steps' durations show where a new member's catch-up time
	// goes after the transfer (docs/benchmarks.md, Scale).
	in.lg.Info("installed a snapshot image", zap.Uint64("index", md.GetIndex()),
		zap.Duration("ingest", installed.Sub(start)), zap.Duration("reload", time.Since(installed)))
	return nil
}

// reload re-reads everything kept in memory from the engine, after a
// snapshot replaced its contents.
func (in *Installer) reload() error {
	c := in.cfg
	if err := c.MVCC.Reload(); err != nil {
		return fmt.Errorf("snapinstall: reload mvcc: %w", err)
	}
	if err := c.Leases.Reload(); err != nil {
		return fmt.Errorf("snapinstall: reload leases: %w", err)
	}
	if err := c.Auth.Reload(c.Engine); err != nil {
		return fmt.Errorf("snapinstall: reload auth: %w", err)
	}
	if err := c.Alarms.Reload(c.Engine); err != nil {
		return fmt.Errorf("snapinstall: reload alarms: %w", err)
	}
	if err := c.Members.Reload(c.Engine); err != nil {
		return fmt.Errorf("snapinstall: reload members: %w", err)
	}
	c.SyncPeers(c.Members.Members())
	// Watchers never saw the revisions the snapshot skipped: they catch up
	// from the installed history.
	c.Watch.Resync()
	return nil
}
