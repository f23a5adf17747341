package snapinstall

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/raftsnap"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
	"github.com/metastore/metastore/internal/transport"
)

// appliedEngine is an engine whose apply batches reached index at term.
func appliedEngine(t *testing.T, index, term uint64) storage.Engine {
	t.Helper()
	eng := memory.New()
	b := eng.NewBatch()
	defer b.Close()
	v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, index), term)
	if err := b.Set(storage.KeyAppliedIndex, v); err != nil {
		t.Fatal(err)
	}
	if err := raftlog.StageConfState(b, &raftpb.ConfState{Voters: []uint64{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	return eng
}

func msgSnap(index uint64) *raftpb.Message {
	return &raftpb.Message{
		Type:     raftpb.MessageType_MsgSnap.Enum(),
		From:     proto.Uint64(1),
		To:       proto.Uint64(2),
		Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(2)}},
	}
}

func TestOpenSnapshotSendsTheStateItHas(t *testing.T) {
	in := New(Config{Engine: appliedEngine(t, 10, 3)})
	if _, _, err := in.OpenSnapshot(msgSnap(11)); err == nil || !strings.Contains(err.Error(), "behind") {
		t.Fatalf("asked past the applied index: err = %v", err)
	}
	out, img, err := in.OpenSnapshot(msgSnap(8))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	md := out.GetSnapshot().GetMetadata()
	if md.GetIndex() != 10 || md.GetTerm() != 3 || len(md.GetConfState().GetVoters()) != 2 {
		t.Fatalf("message carries %v, want the engine's index 10, term 3 and ConfState", md)
	}
}

func TestReceiveSnapshotKeepsAnImageRaftAccepted(t *testing.T) {
	leader := New(Config{Engine: appliedEngine(t, 10, 3)})
	image := func() (*raftpb.Message, *bytes.Buffer) {
		out, img, err := leader.OpenSnapshot(msgSnap(10))
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		var buf bytes.Buffer
		if _, err := img.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		return out, &buf
	}
	var applied, commit uint64
	feng := memory.New()
	follower := New(Config{Engine: feng, Receiver: raftsnap.NewReceiver(feng, filepath.Join(t.TempDir(), "staging")),
		Applied: func() uint64 { return applied }, Commit: func() uint64 { return commit }})
	m, buf := image()
	if err := follower.ReceiveSnapshot(context.Background(), m, buf); err != nil {
		t.Fatal(err)
	}
	// Raft has not accepted it (commit below its index): a newer image may
	// replace it.
	m, buf = image()
	if err := follower.ReceiveSnapshot(context.Background(), m, buf); err != nil {
		t.Fatalf("replacing an image raft has not accepted: %v", err)
	}
	// Raft accepted it and the apply loop has not installed it: keep it.
	commit = 10
	m, buf = image()
	if err := follower.ReceiveSnapshot(context.Background(), m, buf); !errors.Is(err, transport.ErrSnapshotBusy) {
		t.Fatalf("replacing an accepted image: err = %v, want ErrSnapshotBusy", err)
	}
	// Installed: a later image is welcome again.
	applied = 10
	m, buf = image()
	if err := follower.ReceiveSnapshot(context.Background(), m, buf); err != nil {
		t.Fatalf("after installation: %v", err)
	}
}
