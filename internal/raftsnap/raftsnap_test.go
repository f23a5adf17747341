package raftsnap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
)

func engines(t *testing.T) map[string]func() storage.Engine {
	return map[string]func() storage.Engine{
		"memory": func() storage.Engine { return memory.New() },
		"pebble": func() storage.Engine {
			e, err := pebbleengine.Open(filepath.Join(t.TempDir(), "db"), pebbleengine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Close() })
			return e
		},
	}
}

func put(t *testing.T, eng storage.Engine, kv ...string) {
	t.Helper()
	b := eng.NewBatch()
	defer b.Close()
	for i := 0; i < len(kv); i += 2 {
		if err := b.Set([]byte(kv[i]), []byte(kv[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
}

func applied(index, term uint64) string {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, index)
	binary.BigEndian.PutUint64(v[8:], term)
	return string(v)
}

func dump(t *testing.T, eng storage.Engine, pred func(k []byte) bool) map[string]string {
	t.Helper()
	it, err := eng.NewIter(storage.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]string{}
	for ok := it.First(); ok; ok = it.Next() {
		if pred(it.Key()) {
			out[string(it.Key())] = string(it.Value())
		}
	}
	return out
}

// leader builds an engine with state in every part of the key space,
// including a value larger than a chunk and keys with arbitrary bytes.
func leader(t *testing.T, eng storage.Engine) {
	b := eng.NewBatch()
	if err := raftlog.StageConfState(b, &raftpb.ConfState{Voters: []uint64{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	put(t, eng,
		string(storage.KeyAppliedIndex), applied(500, 4),
		string(storage.KeyMemberID), "leader-id",
		string(storage.KeyClusterID), "cluster1",
		"A/alarm", "1", "a/enabled", "\x01", "c/1", "{}", "h/\x00\x01", "x",
		"k/\x00\xff\x00\x01", "zero-byte key", "l/\x00", "lease",
		"k/big", string(bytes.Repeat([]byte("v"), 3<<20)),
		string(storage.RaftEntryKey(7)), "leader log entry")
	var kvs []string
	for i := 0; i < 3000; i++ {
		kvs = append(kvs, fmt.Sprintf("k/key%05d", i), fmt.Sprintf("value %d", i))
	}
	put(t, eng, kvs...)
}

// leaderAndFollower returns a leader's engine with state, a follower's
// with its ID and a key the image does not have, and a staging directory.
func leaderAndFollower(t *testing.T, mk func() storage.Engine) (src, dst storage.Engine, dir string) {
	src, dst = mk(), mk()
	leader(t, src)
	put(t, dst, string(storage.KeyMemberID), "follower-id", "k/stale", "gone")
	return src, dst, filepath.Join(t.TempDir(), "staging")
}

// image returns the metadata and the stream of an image of src.
func image(t *testing.T, src storage.Engine) (*raftpb.SnapshotMetadata, []byte) {
	t.Helper()
	im, err := OpenImage(src)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	var buf bytes.Buffer
	if _, err := im.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return im.Meta, buf.Bytes()
}

// The image is staged in one file per span, or (with a small file size)
// in many files cut inside the spans, and installed exactly.
func TestImageRoundTrip(t *testing.T) {
	for name, mk := range engines(t) {
		for _, fileBytes := range []int{targetFile, 64 << 10} {
			t.Run(fmt.Sprintf("%s/%d", name, fileBytes), func(t *testing.T) { roundTrip(t, mk, fileBytes) })
		}
	}
}

func roundTrip(t *testing.T, mk func() storage.Engine, fileBytes int) {
	src, dst := mk(), mk()
	leader(t, src)
	put(t, dst, string(storage.KeyMemberID), "follower-id", "k/stale", "gone", "c/9", "stale member",
		string(storage.KeyAppliedIndex), applied(10, 1))
	log, err := raftlog.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := log.Save(&raftpb.HardState{Term: proto.Uint64(2), Vote: proto.Uint64(1), Commit: proto.Uint64(10)},
		[]*raftpb.Entry{{Index: proto.Uint64(1), Term: proto.Uint64(1)}}, true); err != nil {
		t.Fatal(err)
	}

	im, err := OpenImage(src)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if im.Meta.GetIndex() != 500 || im.Meta.GetTerm() != 4 || len(im.Meta.GetConfState().GetVoters()) != 3 {
		t.Fatalf("image metadata %v", im.Meta)
	}
	// Writes after the image was opened are not part of it.
	put(t, src, "k/later", "x")
	var buf bytes.Buffer
	if _, err := im.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "staging")
	rc := NewReceiver(dst, dir)
	rc.fileBytes = fileBytes
	if err := rc.Stage(&buf, im.Meta); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, dst, func(k []byte) bool { return string(k) == "k/stale" }); len(got) != 1 {
		t.Fatal("staging touched the live state")
	}
	// One file per span; the 3 MiB value alone passes the small size.
	files, _ := stagedFiles(dir)
	if want := 4; len(files) < want || (fileBytes < 1<<20) != (len(files) > want) {
		t.Fatalf("staged %d files with files of %d bytes", len(files), fileBytes)
	}
	if err := rc.Install(im.Meta, log); err != nil {
		t.Fatal(err)
	}
	want := dump(t, src, replicated)
	delete(want, "k/later")
	checkInstalled(t, want, dst, dir)
	if left := dump(t, dst, func(k []byte) bool {
		return bytes.HasPrefix(k, storage.PrefixSnapStaging) || bytes.HasPrefix(k, storage.PrefixRaftEntry) || bytes.Equal(k, storage.KeyRaftInstall)
	}); len(left) != 0 {
		t.Fatalf("left behind: %d staging/log/marker keys", len(left))
	}
	reopened, err := raftlog.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	hs, cs, _ := reopened.InitialState()
	if fi, _ := reopened.FirstIndex(); fi != 501 || hs.GetCommit() != 500 || hs.GetTerm() != 2 || len(cs.GetVoters()) != 3 {
		t.Fatalf("raft log after install: first %d, hard state %v, conf state %v", fi, hs, cs)
	}
}

// A crash after the marker is durable is completed by Recover, whether
// the ingestion happened or not; one before leaves the old state, and the
// staging is discarded.
func TestRecover(t *testing.T) {
	for name, mk := range engines(t) {
		t.Run(name, func(t *testing.T) {
			src, dst, dir := leaderAndFollower(t, mk)
			md, data := image(t, src)
			if err := NewReceiver(dst, dir).Stage(bytes.NewReader(data), md); err != nil {
				t.Fatal(err)
			}
			// Crash before the marker: old state kept, staging dropped.
			if done, err := Recover(dst, dir); err != nil || done {
				t.Fatalf("Recover without marker = %v, %v", done, err)
			}
			if v, err := dst.Get([]byte("k/stale")); err != nil || string(v) != "gone" {
				t.Fatalf("old state lost: %q %v", v, err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("staging not discarded: %v", err)
			}
			for _, ingested := range []bool{false, true} {
				// Crash after the marker, before or after the ingestion,
				// with a write of the old state that the image replaces.
				if err := NewReceiver(dst, dir).Stage(bytes.NewReader(data), md); err != nil {
					t.Fatal(err)
				}
				mv, _ := raftlog.EncodeMetadata(md)
				put(t, dst, string(storage.KeyRaftInstall), string(mv), "k/key00001", "garbage")
				if ingested {
					if err := ingestStaged(dst, dir, md); err != nil {
						t.Fatal(err)
					}
				}
				if done, err := Recover(dst, dir); err != nil || !done {
					t.Fatalf("Recover with marker = %v, %v", done, err)
				}
				if _, err := dst.Get([]byte("k/stale")); !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("stale key survived recovery: %v", err)
				}
				if v, _ := dst.Get([]byte("k/key00001")); string(v) != "value 1" {
					t.Fatalf("k/key00001 = %q after recovery", v)
				}
				checkInstalled(t, dump(t, src, replicated), dst, dir)
				put(t, dst, "k/stale", "gone")
			}
		})
	}
}

// checkInstalled checks that dst holds the replicated state want, its own
// member ID, a Raft log starting after the image and no marker or staging
// left.
func checkInstalled(t *testing.T, want map[string]string, dst storage.Engine, dir string) {
	t.Helper()
	got := dump(t, dst, replicated)
	if len(got) != len(want) {
		t.Fatalf("installed %d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("key %q: got %d bytes, want %d", k, len(got[k]), len(v))
		}
	}
	if v, _ := dst.Get(storage.KeyMemberID); string(v) != "follower-id" {
		t.Fatalf("member id overwritten: %q", v)
	}
	if _, err := dst.Get(storage.KeyRaftInstall); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("installation marker left: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staging left: %v", err)
	}
	log, err := raftlog.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := log.FirstIndex(); fi != 501 {
		t.Fatalf("first index after recovery %d", fi)
	}
}

// A marker whose staged image is missing or incomplete (a staging
// directory lost by a machine crash, say) is refused: installing it would
// wipe the state.
func TestRecoverRefusesIncompleteStaging(t *testing.T) {
	src, dst := memory.New(), memory.New()
	dir := filepath.Join(t.TempDir(), "staging")
	leader(t, src)
	put(t, dst, string(storage.KeyMemberID), "follower-id", "k/stale", "kept")
	md, data := image(t, src)
	mv, _ := raftlog.EncodeMetadata(md)
	put(t, dst, string(storage.KeyRaftInstall), string(mv))
	if _, err := Recover(dst, dir); err == nil {
		t.Fatal("Recover with a marker and no staged image succeeded")
	}
	for _, damage := range []func(){
		func() { os.Remove(filepath.Join(dir, "000002.sst")) },
		func() { os.Remove(filepath.Join(dir, completeFile)) },
		func() { os.WriteFile(filepath.Join(dir, completeFile), []byte("short"), 0o600) },
	} {
		if err := NewReceiver(dst, dir).Stage(bytes.NewReader(data), md); err != nil {
			t.Fatal(err)
		}
		damage()
		if _, err := Recover(dst, dir); err == nil {
			t.Fatal("Recover with a damaged staging succeeded")
		}
		if v, err := dst.Get([]byte("k/stale")); err != nil || string(v) != "kept" {
			t.Fatalf("a refused recovery changed the state: %q %v", v, err)
		}
	}
}

// A data dir left by a version that staged images under s/ is completed
// from there.
func TestRecoverLegacyStaging(t *testing.T) {
	for name, mk := range engines(t) {
		t.Run(name, func(t *testing.T) {
			src, dst, dir := leaderAndFollower(t, mk)
			md, _ := image(t, src)
			b := dst.NewBatch()
			for k, v := range dump(t, src, replicated) {
				if err := b.Set(append(bytes.Clone(storage.PrefixSnapStaging), k...), []byte(v)); err != nil {
					t.Fatal(err)
				}
			}
			mv, _ := raftlog.EncodeMetadata(md)
			if err := b.Set(storage.KeyRaftInstall, mv); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(true); err != nil {
				t.Fatal(err)
			}
			b.Close()
			if done, err := Recover(dst, dir); err != nil || !done {
				t.Fatalf("Recover = %v, %v", done, err)
			}
			checkInstalled(t, dump(t, src, replicated), dst, dir)
			if left := dump(t, dst, func(k []byte) bool { return bytes.HasPrefix(k, storage.PrefixSnapStaging) }); len(left) != 0 {
				t.Fatalf("legacy staging left: %d keys", len(left))
			}
		})
	}
}

func TestCorruptStreamRejected(t *testing.T) {
	src, dst := memory.New(), memory.New()
	leader(t, src)
	md, data := image(t, src)
	// The crafted streams below fail for the reason they name: a well
	// ordered one of replicated keys is staged.
	if err := NewReceiver(dst, filepath.Join(t.TempDir(), "staging")).Stage(bytes.NewReader(stream(t, "c/1", "x", "k/1", "y", "z", "w")), md); err != nil {
		t.Fatalf("crafted stream: %v", err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		md   *raftpb.SnapshotMetadata
	}{
		{"bit flip", flip(data, len(data)/2), md},
		{"truncated", data[:len(data)-20], md},
		{"wrong index", data, &raftpb.SnapshotMetadata{Index: proto.Uint64(501), Term: proto.Uint64(4)}},
		{"keys out of order", stream(t, "k/2", "x", "k/1", "y"), md},
		{"key repeated", stream(t, "k/1", "x", "k/1", "y"), md},
		{"member id", stream(t, "c/1", "x", string(storage.KeyMemberID), "y"), md},
		{"raft log entry", stream(t, string(storage.RaftEntryKey(3)), "x"), md},
		{"old staging", stream(t, "s/k/1", "x"), md},
		{"past the last span", stream(t, string(bytes.Repeat([]byte{0xff}, 17)), "x"), md},
	} {
		dir := filepath.Join(t.TempDir(), "staging")
		rc := NewReceiver(dst, dir)
		err := rc.Stage(bytes.NewReader(tc.data), tc.md)
		if err == nil {
			t.Fatalf("%s: staged", tc.name)
		}
		if rc.Staged() != nil {
			t.Fatalf("%s: a failed stage left a staged image", tc.name)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: a failed stage left files: %v", tc.name, err)
		}
	}
}

// replicated reports whether k is part of an image.
func replicated(k []byte) bool {
	for _, sp := range replicatedSpans() {
		if bytes.Compare(k, sp.start) >= 0 && (sp.end == nil || bytes.Compare(k, sp.end) < 0) {
			return true
		}
	}
	return false
}

// stream is an image of index 500 term 4 holding the pairs kv as given.
func stream(t *testing.T, kv ...string) []byte {
	var buf bytes.Buffer
	cw := &chunkWriter{w: &buf}
	var n, size uint64
	for i := 0; i < len(kv); i += 2 {
		if err := cw.add([]byte(kv[i]), []byte(kv[i+1])); err != nil {
			t.Fatal(err)
		}
		n++
		size += uint64(len(kv[i]) + len(kv[i+1]))
	}
	hdr := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 500), 4)
	end := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, n), size)
	var out bytes.Buffer
	hw := &chunkWriter{w: &out}
	if err := hw.write(chunkHeader, hdr); err != nil {
		t.Fatal(err)
	}
	if err := cw.flush(); err != nil {
		t.Fatal(err)
	}
	out.Write(buf.Bytes())
	if err := hw.write(chunkEnd, end); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x10
	return c
}

// TestChunkLayout pins the wire layout of a chunk (format.go): the type,
// the payload length and the CRC-32C over both and the payload, then the
// payload, so that an encoder change cannot silently change the format
// that other versions read.
func TestChunkLayout(t *testing.T) {
	var buf bytes.Buffer
	cw := &chunkWriter{w: &buf}
	if err := cw.add([]byte("ab"), []byte("xyz")); err != nil {
		t.Fatal(err)
	}
	if err := cw.flush(); err != nil {
		t.Fatal(err)
	}
	if err := cw.write(chunkEnd, []byte{7}); err != nil {
		t.Fatal(err)
	}
	chunk := func(typ byte, payload []byte) []byte {
		c := append([]byte{typ}, binary.BigEndian.AppendUint32(nil, uint32(len(payload)))...)
		c = binary.BigEndian.AppendUint32(c, crc32.Checksum(append(append([]byte(nil), c...), payload...), crc32.MakeTable(crc32.Castagnoli)))
		return append(c, payload...)
	}
	want := append(chunk('D', []byte{2, 'a', 'b', 3, 'x', 'y', 'z'}), chunk('E', []byte{7})...)
	if !bytes.Equal(buf.Bytes(), want) || cw.n != int64(len(want)) {
		t.Fatalf("wrote %x (%d bytes counted), want %x", buf.Bytes(), cw.n, want)
	}
}
