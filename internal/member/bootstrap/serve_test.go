package bootstrap

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/backend"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

// leaders reports the leaders in turn, one per Leader call, then the last
// one for ever; LeaderChanged is always already closed, so a wait for a
// change never blocks.
type leaders struct{ seq []uint64 }

func (l *leaders) Leader() uint64 {
	v := l.seq[0]
	if len(l.seq) > 1 {
		l.seq = l.seq[1:]
	}
	return v
}

func (l *leaders) LeaderChanged() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

func TestAwaitServing(t *testing.T) {
	failure := errors.New("publish refused")
	cases := []struct {
		name    string
		leaders []uint64
		ready   []error // Ready's answers in turn
		cancel  bool    // ctx already ended
		want    error
		calls   int
	}{
		{"leader known, ready at once", []uint64{1}, []error{nil}, false, nil, 1},
		{"leader elected later", []uint64{0, 0, 2}, []error{nil}, false, nil, 1},
		{"a round times out, the next serves", []uint64{1}, []error{backend.ErrTimeout, context.DeadlineExceeded, nil}, false, nil, 3},
		{"another error ends the wait", []uint64{1}, []error{backend.ErrTimeout, failure}, false, failure, 2},
		{"the caller gives up", []uint64{1}, []error{backend.ErrTimeout}, true, context.Canceled, 1},
	}
	for _, c := range cases {
		calls := 0
		applied := uint64(0)
		ctx, cancel := context.WithCancel(context.Background())
		if c.cancel {
			cancel()
		}
		err := AwaitServing(ctx, ServeConfig{
			Raft: &leaders{seq: c.leaders},
			Ready: func(context.Context) error {
				calls++
				applied++ // each round progresses
				return c.ready[calls-1]
			},
			Applied:       func() uint64 { return applied },
			SnapshotBytes: func() uint64 { return 0 },
			Round:         time.Hour,
			Failed:        make(chan struct{}),
			Logger:        zap.NewNop(),
		})
		cancel()
		if !errors.Is(err, c.want) || calls != c.calls {
			t.Errorf("%s: err %v after %d Ready calls; want %v after %d", c.name, err, calls, c.want, c.calls)
		}
	}
}

// A member that fails while it waits for a leader stops waiting with its
// error.
func TestAwaitServingFailed(t *testing.T) {
	failed := make(chan struct{})
	close(failed)
	stopped := errors.New("removed")
	never := make(chan struct{})
	err := AwaitServing(context.Background(), ServeConfig{
		Raft:    noLeader{never},
		Ready:   func(context.Context) error { t.Fatal("ready without a leader"); return nil },
		Applied: func() uint64 { return 0 }, SnapshotBytes: func() uint64 { return 0 },
		Round: time.Hour, Failed: failed, Err: func() error { return stopped },
	})
	if !errors.Is(err, stopped) {
		t.Fatalf("err %v, want %v", err, stopped)
	}
}

type noLeader struct{ changed chan struct{} }

func (n noLeader) Leader() uint64                 { return 0 }
func (n noLeader) LeaderChanged() <-chan struct{} { return n.changed }

// restoredEngine is an engine holding the mark of a restored data dir.
func restoredEngine(t *testing.T) storage.Engine {
	t.Helper()
	eng := memory.New()
	b := eng.NewBatch()
	defer b.Close()
	if err := b.Set(storage.KeyRestored, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	return eng
}

type compactions []uint64

func (c *compactions) Compact(i uint64) error     { *c = append(*c, i); return nil }
func (c *compactions) LastIndex() (uint64, error) { return 100, nil }

func TestCompactRestoredLog(t *testing.T) {
	eng := restoredEngine(t)
	var log compactions
	if done, err := CompactRestoredLog(eng, &log, 7, zap.NewNop()); err != nil || !done {
		t.Fatalf("restored data dir: %v %v", done, err)
	}
	if len(log) != 1 || log[0] != 7 {
		t.Fatalf("compactions %v, want [7]", log)
	}
	if _, err := eng.Get(storage.KeyRestored); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("restore mark left: %v", err)
	}
	if done, err := CompactRestoredLog(eng, &log, 9, zap.NewNop()); err != nil || done || len(log) != 1 {
		t.Fatalf("second start: %v %v, compactions %v", done, err, log)
	}
}

// A follower can have applied entries its log has not persisted yet (the
// node hands committed entries to the apply loop before it saves the
// Ready). CI once failed a restored member's start with "term of compaction
// index 7: requested entry at index is unavailable" for that reason.
func TestCompactRestoredLogAppliedAheadOfLog(t *testing.T) {
	eng := restoredEngine(t)
	log, err := raftlog.Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 5; i++ {
		ents = append(ents, &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(1), Type: raftpb.EntryType_EntryNormal.Enum()})
	}
	if err := log.Save(&raftpb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(5)}, ents, true); err != nil {
		t.Fatal(err)
	}
	if done, err := CompactRestoredLog(eng, log, 7, zap.NewNop()); err != nil || !done {
		t.Fatalf("applied 7, log through 5: %v %v", done, err)
	}
	if first, _ := log.FirstIndex(); first != 6 {
		t.Fatalf("first index %d after compaction, want 6", first)
	}
	if _, err := eng.Get(storage.KeyRestored); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("restore mark left: %v", err)
	}
}

// With nothing in the log there is nothing to compact: the mark stays, so
// that the next start compacts.
func TestCompactRestoredLogEmptyLogKeepsMark(t *testing.T) {
	eng := restoredEngine(t)
	log, err := raftlog.Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	if done, err := CompactRestoredLog(eng, log, 3, zap.NewNop()); err != nil || done {
		t.Fatalf("empty log: %v %v", done, err)
	}
	if _, err := eng.Get(storage.KeyRestored); err != nil {
		t.Fatalf("restore mark gone: %v", err)
	}
}
