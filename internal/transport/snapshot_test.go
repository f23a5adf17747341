package transport

import (
	"bytes"
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// fakeImage writes size bytes of a pattern.
type fakeImage struct {
	size   int
	closed chan struct{}
}

func (f *fakeImage) WriteTo(w io.Writer) (int64, error) {
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	var n int64
	for left := f.size; left > 0; {
		c := chunk[:min(left, len(chunk))]
		m, err := w.Write(c)
		n += int64(m)
		if err != nil {
			return n, err
		}
		left -= m
	}
	return n, nil
}

func (f *fakeImage) Close() error { close(f.closed); return nil }

type fakeSnapshots struct {
	size   int
	img    *fakeImage
	mu     sync.Mutex
	got    int
	reject error
}

func (f *fakeSnapshots) OpenSnapshot(m *raftpb.Message) (*raftpb.Message, SnapshotImage, error) {
	out := proto.Clone(m).(*raftpb.Message)
	out.Snapshot.Metadata.Index = proto.Uint64(m.GetSnapshot().GetMetadata().GetIndex() + 5) // the image is newer
	f.img = &fakeImage{size: f.size, closed: make(chan struct{})}
	return out, f.img, nil
}

func (f *fakeSnapshots) ReceiveSnapshot(_ context.Context, _ *raftpb.Message, r io.Reader) error {
	if f.reject != nil {
		return f.reject
	}
	n, err := io.Copy(io.Discard, r)
	f.mu.Lock()
	f.got = int(n)
	f.mu.Unlock()
	return err
}

func snapStatus(t *testing.T, f *fakeRaft) raft.SnapshotStatus {
	t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	select {
	case st := <-f.snaps:
		return st
	case <-timer.C:
		t.Fatal("no snapshot status reported")
		return 0
	}
}

// A MsgSnap travels on its own request with the image behind it; the
// receiver steps the message after the image was taken in, and the sender
// reports the outcome to raft.
func TestSnapshotStreamed(t *testing.T) {
	const size = 9<<20 + 123 // several chunks, not a round number
	send := &fakeSnapshots{size: size}
	recv := &fakeSnapshots{}
	a := newEndpoint(t, 1, 0xc1, func(c *Config) { c.Snapshots = send })
	b := newEndpoint(t, 2, 0xc1, func(c *Config) { c.Snapshots = recv })
	if err := a.tr.AddPeer(2, []string{b.url}); err != nil {
		t.Fatal(err)
	}
	snap := &raftpb.Message{Type: raftpb.MessageType_MsgSnap.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(1),
		Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(10), Term: proto.Uint64(1)}}}
	a.tr.Send([]*raftpb.Message{snap})
	m := recvWithin(t, b.raft.steps, 20*time.Second)
	if m.GetType() != raftpb.MessageType_MsgSnap || m.GetSnapshot().GetMetadata().GetIndex() != 15 {
		t.Fatalf("stepped %v, want the MsgSnap with the image's index 15", m)
	}
	if st := snapStatus(t, a.raft); st != raft.SnapshotFinish {
		t.Fatalf("status %v, want finish", st)
	}
	recv.mu.Lock()
	got := recv.got
	recv.mu.Unlock()
	if got != size {
		t.Fatalf("receiver read %d bytes of %d", got, size)
	}
	<-send.img.closed

	// A receiver that refuses makes the sender report a failure, and raft
	// is not stepped.
	recv.reject = ErrSnapshotBusy
	a.tr.Send([]*raftpb.Message{snap})
	if st := snapStatus(t, a.raft); st != raft.SnapshotFailure {
		t.Fatalf("status %v for a refused snapshot, want failure", st)
	}
	select {
	case m := <-b.raft.steps:
		t.Fatalf("refused snapshot was stepped: %v", m)
	default:
	}
}

// A removed member's open stream is ended and its new streams are refused
// with 410 Gone, which tells it that it was removed.
func TestRemovedMemberIsTold(t *testing.T) {
	removed := make(chan struct{}, 16)
	var gone atomic.Bool
	a := newEndpoint(t, 1, 0xc1, func(c *Config) {
		c.Removed = func() {
			select {
			case removed <- struct{}{}:
			default:
			}
		}
	})
	b := newEndpoint(t, 2, 0xc1, func(c *Config) { c.IsRemoved = func(id uint64) bool { return id == 1 && gone.Load() } })
	if err := a.tr.AddPeer(2, []string{b.url}); err != nil {
		t.Fatal(err)
	}
	a.tr.Send([]*raftpb.Message{heartbeat(1, 2, 1)})
	recvWithin(t, b.raft.steps, 20*time.Second) // a member: its stream is open
	gone.Store(true)
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for i := uint64(2); ; i++ {
		a.tr.Send([]*raftpb.Message{heartbeat(1, 2, i)})
		select {
		case <-removed:
			select {
			case m := <-b.raft.steps:
				t.Fatalf("a message from a removed member was stepped: %v", m)
			default:
			}
			return
		case <-time.After(50 * time.Millisecond):
		case <-timer.C:
			t.Fatal("the removed member was not told")
		}
	}
}

// The request body gives the same bytes to net/http's WriteTo and to a
// plain reader, takes only one of them, and fails writes once closed.
func TestImageBody(t *testing.T) {
	const size = 3<<20 + 7
	var viaWriteTo bytes.Buffer
	b := newImageBody([]byte("frame"), &fakeImage{size: size, closed: make(chan struct{})})
	if n, err := b.WriteTo(&viaWriteTo); err != nil || n != size+5 {
		t.Fatalf("WriteTo = %d, %v; want %d bytes", n, err, size+5)
	}
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Fatal("a body written once was read again")
	}
	if n, err := b.finish(); err != nil || n != size+5 {
		t.Fatalf("finish = %d, %v", n, err)
	}

	r := newImageBody([]byte("frame"), &fakeImage{size: size, closed: make(chan struct{})})
	viaRead, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(viaRead, viaWriteTo.Bytes()) {
		t.Fatalf("Read gave %d bytes (%v), WriteTo %d", len(viaRead), err, viaWriteTo.Len())
	}
	if n, _ := r.finish(); n != size+5 {
		t.Fatalf("finish after Read = %d", n)
	}

	// Closed before anything was written (the request failed first): the
	// writer that comes late writes nothing, and finish does not wait.
	c := newImageBody([]byte("frame"), &fakeImage{size: size, closed: make(chan struct{})})
	if n, err := c.finish(); n != 0 || err != nil {
		t.Fatalf("finish of an unused body = %d, %v", n, err)
	}
	var late bytes.Buffer
	if n, err := c.WriteTo(&late); err == nil || n != 0 || late.Len() != 0 {
		t.Fatalf("WriteTo after Close = %d, %v (%d bytes)", n, err, late.Len())
	}

	// Closed while being written: the image's next write fails.
	d := newImageBody([]byte("frame"), &fakeImage{size: size, closed: make(chan struct{})})
	w := &closingWriter{close: func() { d.Close() }}
	if n, err := d.WriteTo(w); err == nil || n >= size {
		t.Fatalf("WriteTo closed midway = %d, %v; want an early error", n, err)
	}
	within(t, 5*time.Second, "finish", func() { d.finish() })
}

// closingWriter runs close after its second write.
type closingWriter struct {
	writes int
	close  func()
}

func (c *closingWriter) Write(p []byte) (int, error) {
	c.writes++
	if c.writes == 2 {
		c.close()
	}
	return len(p), nil
}
