package raftwal

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
)

// TestCrashAtEverySave runs the log on the crash-cloning memory file
// system: appends, HardState updates, leader changes that overwrite the
// uncommitted tail, compactions and snapshot resets, saves with sync and
// without. After every operation, synced or not, it crashes (keeping none,
// half or all of the unsynced data, 4 KiB block by block in any order) and
// reopens: the log opens, and what it holds is exactly the state after one
// of the operations from the last synced one on — all of a Save or none of
// it, nothing synced lost. Each reopened log then takes another synced
// Save and is reopened again, to show that appending after a cut tail
// works.
func TestCrashAtEverySave(t *testing.T) {
	seed := uint64(20261207) // fixed: the same crash points every run (a failure replays)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	fs := vfs.NewCrashableMem()
	// Small segments and zeroing distance: rotations, deletions and
	// zeroing all happen between crash points.
	opts := Options{SegmentBytes: 8 << 10, zeroAhead: 3 << 10}
	l := mustOpen(t, fs, "/wal", opts)
	defer l.Close()

	var (
		states     = []string{render(t, l)} // the state after each operation
		lastSynced = 0                      // index in states of the last synced one
		term       = uint64(1)
		commit     uint64
		crashes    int
		kinds      = map[string]int{}
	)
	for i := range 200 {
		last := l.LastIndex()
		ci, _ := l.Compacted()
		var (
			kind string
			sync = true
			err  error
		)
		switch r := rng.IntN(40); {
		case r < 3 && commit > ci:
			kind = "compact"
			err = l.Compact(ci + 1 + uint64(rng.IntN(int(commit-ci))))
		case r == 3:
			// A snapshot from the leader, past the log's end.
			kind = "reset"
			term++
			commit = last + 1 + uint64(rng.IntN(5))
			err = l.Reset(commit, term, hs(term, commit))
		default:
			kind = "save"
			from := last + 1
			if rng.IntN(8) == 0 && last > commit {
				// A new leader overwrites the uncommitted tail.
				kind = "overwrite"
				term++
				from = commit + 1 + uint64(rng.IntN(int(last-commit)))
			}
			var es []*raftpb.Entry
			for j := range 1 + rng.IntN(4) {
				es = append(es, ent(from+uint64(j), term, strings.Repeat(fmt.Sprint(i%10), 100+rng.IntN(900))))
			}
			newLast := from + uint64(len(es)) - 1
			if c := commit + uint64(rng.IntN(3)); c <= newLast && c > commit {
				commit = c
			}
			sync = rng.IntN(3) != 0
			err = l.Save(hs(term, commit), es, sync)
		}
		if err != nil {
			t.Fatalf("op %d (%s): %v", i, kind, err)
		}
		kinds[kind]++
		states = append(states, render(t, l))
		if sync {
			lastSynced = len(states) - 1
		}
		// Crashes after unsynced saves too: then the clone holds any
		// subset of their blocks.
		for _, keep := range []int{0, 50, 100} {
			clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: keep, RNG: rng})
			cl, err := Open(clone, "/wal", opts)
			if err != nil {
				t.Fatalf("crash after op %d (%s) keeping %d%% of unsynced data: reopen: %v", i, kind, keep, err)
			}
			got := render(t, cl)
			found := false
			for _, st := range states[lastSynced:] {
				found = found || st == got
			}
			if !found {
				t.Fatalf("crash after op %d (%s) keeping %d%%: recovered\n%s\nwhich is no state from the last synced one on (%d ops); last synced:\n%s",
					i, kind, keep, got, len(states), states[lastSynced])
			}
			// Go on from the recovered state, then reopen once more.
			h := cl.HardState()
			next := ent(cl.LastIndex()+1, max(h.GetTerm(), 1), "after the crash")
			if err := cl.Save(nil, []*raftpb.Entry{next}, true); err != nil {
				t.Fatalf("crash after op %d keeping %d%%: save after reopen: %v", i, keep, err)
			}
			want := render(t, cl)
			if err := cl.Close(); err != nil {
				t.Fatal(err)
			}
			cl, err = Open(clone, "/wal", opts)
			if err != nil {
				t.Fatalf("crash after op %d keeping %d%%: second reopen: %v", i, keep, err)
			}
			if got := render(t, cl); got != want {
				t.Fatalf("crash after op %d keeping %d%%: second reopen\n%s\nwant\n%s", i, keep, got, want)
			}
			if err := cl.Close(); err != nil {
				t.Fatal(err)
			}
			crashes++
		}
	}
	t.Logf("%d crashes after %d operations %v: every reopened log is a state from its last synced one on", crashes, len(states)-1, kinds)
	for _, k := range []string{"save", "overwrite", "compact", "reset"} {
		if kinds[k] == 0 {
			t.Errorf("no %s among the operations: the seed no longer covers it", k)
		}
	}
}

// readFile and writeFile edit a memory file system's files for damage.
func readFile(t *testing.T, fs vfs.FS, path string) []byte {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, fs vfs.FS, path string, b []byte) {
	t.Helper()
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTornTail damages the last records of a segment. In the last segment
// that is a write torn by a crash: Open drops the damaged Save whole (its
// entries and its HardState) and the log goes on after it. In any other
// segment it is corruption.
func TestTornTail(t *testing.T) {
	type damage func(b []byte, off, n int) []byte // off, n: the damaged Save's last record
	for _, tc := range []struct {
		name    string
		damage  damage
		damaged bool // not a torn write: ErrCorrupt even in the last segment
	}{
		{"cut inside the last record", func(b []byte, off, n int) []byte { return b[:off+n-1] }, false},
		{"cut inside the header", func(b []byte, off, n int) []byte { return b[:off+5] }, false},
		{"flipped byte in the payload", func(b []byte, off, n int) []byte { b[off+n-1] ^= 1; return b }, true},
		{"flipped byte in the checksum", func(b []byte, off, n int) []byte { b[off] ^= 0x40; return b }, true},
		{"length past the end", func(b []byte, off, n int) []byte { b[off+4] = 0x7f; return b }, false},
		{"zeroed last record", func(b []byte, off, n int) []byte { clear(b[off : off+n]); return b }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, inLast := range []bool{true, false} {
				fs := vfs.NewMem()
				opts := Options{SegmentBytes: 2 << 10}
				l := mustOpen(t, fs, "/wal", opts)
				mustSave(t, l, hs(1, 2), ents(1, 5, 1, 100), true)
				if !inLast {
					// Fill the segment so that the next Save seals it.
					mustSave(t, l, hs(1, 3), ents(6, 15, 1, 100), true)
				}
				good := render(t, l)
				last := l.LastIndex()
				seg := l.active()
				// The damaged Save: entries and a HardState, whose record ends
				// the batch.
				start := l.off
				hsRec, err := appendHardState(nil, hs(2, 4), true)
				if err != nil {
					t.Fatal(err)
				}
				hsLen := len(hsRec)
				end := start + 3*(entryOverhead+100) + int64(hsLen)
				mustSave(t, l, hs(2, 4), ents(last+1, last+3, 2, 100), true)
				if inLast != (l.active() == seg) {
					t.Fatalf("the damaged Save is in the last segment: %v, want %v", l.active() == seg, inLast)
				}
				if !inLast {
					mustSave(t, l, hs(2, 5), ents(last+4, last+4, 2, 100), true)
				}
				l.Close()
				// The HardState record is the last of the batch: damage it.
				b := readFile(t, fs, seg.path)
				writeFile(t, fs, seg.path, tc.damage(b, int(end)-hsLen, hsLen))

				l, err = Open(fs, "/wal", opts)
				if !inLast || tc.damaged {
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("damage (in the last segment: %v): Open: %v, want ErrCorrupt", inLast, err)
					}
					t.Logf("damage (in the last segment: %v): %v", inLast, err)
					continue
				}
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if got := render(t, l); got != good {
					t.Fatalf("after the torn Save:\n%s\nwant the state before it:\n%s", got, good)
				}
				if l.off != start {
					t.Fatalf("appending at %d, want %d where the torn Save was", l.off, start)
				}
				if nz, err := nonZero(l.active(), start, l.zeroed); nz || err != nil {
					t.Fatalf("the torn tail is not zeroed: %v, %v", nz, err)
				}
				mustSave(t, l, hs(3, 4), ents(last+1, last+2, 3, 50), true)
				want := render(t, l)
				l.Close()
				l = mustOpen(t, fs, "/wal", opts)
				if got := render(t, l); got != want {
					t.Fatalf("after saving on the cut tail and reopening:\n%s\nwant\n%s", got, want)
				}
				l.Close()
			}
		})
	}
}

// TestStaleRecordsPastTheEnd: a crash may keep a later block of unsynced
// writes without an earlier one, so valid records can lie past the zeros
// where the log ends. Open must zero them, or a shorter record appended
// later could end right where one of them starts and bring it back.
func TestStaleRecordsPastTheEnd(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{}
	l := mustOpen(t, fs, "/wal", opts)
	mustSave(t, l, hs(1, 1), ents(1, 2, 1, 50), true)
	end := l.off
	mustSave(t, l, nil, ents(3, 3, 1, 50), true) // the record that will be stale
	n := l.off - end
	seg := l.active()
	l.Close()
	b := readFile(t, fs, seg.path)
	stale := append([]byte(nil), b[end:end+n]...)
	clear(b[end : end+n])
	copy(b[end+n:], stale) // a valid record of index 3 right after the hole
	writeFile(t, fs, seg.path, b)

	l = mustOpen(t, fs, "/wal", opts)
	if l.LastIndex() != 2 {
		t.Fatalf("last index %d, want 2", l.LastIndex())
	}
	// Exactly as long as the hole: the stale record would follow it.
	mustSave(t, l, nil, ents(3, 3, 2, 50), true)
	l = reopen(t, l, fs, opts)
	defer l.Close()
}

// TestCorruptionFound: damage inside the log is reported, by Open and by
// Entries, wrapped in ErrCorrupt.
func TestCorruptionFound(t *testing.T) {
	t.Run("gap", func(t *testing.T) {
		fs := vfs.NewMem()
		opts := Options{SegmentBytes: 1 << 10}
		l := mustOpen(t, fs, "/wal", opts)
		for i := uint64(1); i <= 40; i += 4 {
			mustSave(t, l, hs(1, 0), ents(i, i+3, 1, 100), true)
		}
		second := l.segs[1].path
		l.Close()
		// Losing a whole segment the compaction point does not cover.
		if err := fs.Remove(second); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(fs, "/wal", opts); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open without a segment: %v, want ErrCorrupt", err)
		}
	})
	t.Run("unknown record type", func(t *testing.T) {
		fs := vfs.NewMem()
		l := mustOpen(t, fs, "/wal", Options{})
		start := l.off
		l.buf = appendPoint(l.buf[:0], 99, 1, 1, true)
		if err := l.write(l.buf, true); err != nil {
			t.Fatal(err)
		}
		path := l.active().path
		l.Close()
		if _, err := Open(fs, "/wal", Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", start)) {
			t.Fatalf("Open with an unknown record type in %s: %v, want ErrCorrupt at offset %d", path, err, start)
		}
	})
	t.Run("read by Entries", func(t *testing.T) {
		fs := vfs.NewMem()
		l := mustOpen(t, fs, "/wal", Options{})
		defer l.Close()
		mustSave(t, l, nil, ents(1, 3, 1, 100), true)
		p := l.idx.at(2)
		if _, err := p.seg.f.WriteAt([]byte{'x'}, p.off+int64(p.n)-1); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Entries(1, 4, 1<<62); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Entries over a damaged record: %v, want ErrCorrupt", err)
		}
		if es, err := l.Entries(3, 4, 1<<62); err != nil || len(es) != 1 {
			t.Fatalf("Entries past the damaged record: %d, %v", len(es), err)
		}
	})
}

// TestEmptyLastSegment: a crash while a segment was being started can
// leave it without its first records. Open writes them again, so that the
// HardState and compaction point outlive the older segments.
func TestEmptyLastSegment(t *testing.T) {
	for _, content := range [][]byte{nil, {1, 2, 3}, make([]byte, 4096)} {
		fs := vfs.NewMem()
		opts := Options{SegmentBytes: 1 << 10}
		l := mustOpen(t, fs, "/wal", opts)
		mustSave(t, l, hs(3, 5), ents(1, 6, 3, 100), true)
		want := render(t, l)
		next := fs.PathJoin("/wal", segmentName(l.active().seq+1))
		l.Close()
		writeFile(t, fs, next, content)
		l = mustOpen(t, fs, "/wal", opts)
		if got := render(t, l); got != want {
			t.Fatalf("with a last segment of %d bytes:\n%s\nwant\n%s", len(content), got, want)
		}
		if l.active().path != next || l.off == 0 {
			t.Fatalf("active segment %s at %d, want %s with its header", l.active().path, l.off, next)
		}
		if err := l.Compact(6); err != nil {
			t.Fatal(err)
		}
		want = render(t, l)
		l.Close()
		l = mustOpen(t, fs, "/wal", opts)
		if got := render(t, l); got != want || l.HardState().GetTerm() != 3 {
			t.Fatalf("after compaction and reopen:\n%s\nwant\n%s", got, want)
		}
		l.Close()
	}
}

// TestTornOrDamaged tells a record torn by a crash (a sector of it never
// written: zeros) from one written whole and damaged later (every sector
// holds data): the first ends the log, the second is reported, even at
// the tail of the last segment, where cutting it would silently drop
// acknowledged writes.
func TestTornOrDamaged(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(rec []byte, off int)
		damaged bool
	}{
		{"a later sector unwritten", func(rec []byte, off int) {
			next := (off/sectorSize + 1) * sectorSize
			clear(rec[next-off:])
		}, false},
		{"a byte flipped in a later sector", func(rec []byte, off int) { rec[len(rec)-2] ^= 0x10 }, true},
	} {
		for _, followed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/followed=%v", tc.name, followed), func(t *testing.T) {
				fs := vfs.NewMem()
				l := mustOpen(t, fs, "/wal", Options{})
				mustSave(t, l, hs(1, 1), ents(1, 2, 1, 100), true)
				good := render(t, l)
				seg, start := l.active(), l.off
				// One entry of 1000 bytes: its record spans at least two
				// sectors; it ends the Save (no HardState).
				mustSave(t, l, nil, ents(3, 3, 1, 1000), true)
				end := l.off
				if followed {
					// A later Save that reached the disk: the damaged record
					// was not the last write, so it was not torn by a crash.
					mustSave(t, l, hs(1, 4), ents(4, 4, 1, 10), true)
				}
				l.Close()
				b := readFile(t, fs, seg.path)
				tc.damage(b[start:end], int(start))
				writeFile(t, fs, seg.path, b)
				l, err := Open(fs, "/wal", Options{})
				if tc.damaged || followed {
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("Open: %v, want ErrCorrupt", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer l.Close()
				if got := render(t, l); got != good {
					t.Fatalf("after the torn Save:\n%s\nwant\n%s", got, good)
				}
			})
		}
	}
}
