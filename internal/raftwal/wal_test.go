package raftwal

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func ent(i, term uint64, data string) *raftpb.Entry {
	e := &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(term)}
	if data != "" {
		e.Data = []byte(data)
	}
	return e
}

// ents returns entries lo..hi at term, each holding "index/term" padded to
// size bytes.
func ents(lo, hi, term uint64, size int) []*raftpb.Entry {
	var out []*raftpb.Entry
	for i := lo; i <= hi; i++ {
		out = append(out, ent(i, term, payload(i, term, size)))
	}
	return out
}

func payload(i, term uint64, size int) string {
	s := fmt.Sprintf("%d/%d", i, term)
	if len(s) < size {
		s += strings.Repeat(".", size-len(s))
	}
	return s
}

func hs(term, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(1), Commit: proto.Uint64(commit)}
}

func mustOpen(t testing.TB, fs vfs.FS, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(fs, dir, opts)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return l
}

func mustSave(t testing.TB, l *Log, h *raftpb.HardState, es []*raftpb.Entry, sync bool) {
	t.Helper()
	if err := l.Save(h, es, sync); err != nil {
		t.Fatalf("save: %v", err)
	}
}

// render describes everything a Log holds: HardState, compaction point,
// and every entry with its term, type and data, read from the files.
func render(t testing.TB, l *Log) string {
	t.Helper()
	var b strings.Builder
	h := l.HardState()
	ci, ct := l.Compacted()
	fmt.Fprintf(&b, "hs %d/%d/%d; compacted %d/%d; ", h.GetTerm(), h.GetVote(), h.GetCommit(), ci, ct)
	first, last := l.FirstIndex(), l.LastIndex()
	if first != ci+1 {
		t.Fatalf("first index %d with compaction point %d", first, ci)
	}
	if last >= first {
		es, err := l.Entries(first, last+1, 1<<62)
		if err != nil {
			t.Fatalf("entries [%d, %d]: %v", first, last, err)
		}
		if uint64(len(es)) != last-first+1 {
			t.Fatalf("entries [%d, %d]: got %d", first, last, len(es))
		}
		for k, e := range es {
			if e.GetIndex() != first+uint64(k) {
				t.Fatalf("entry %d has index %d", first+uint64(k), e.GetIndex())
			}
			term, err := l.Term(e.GetIndex())
			if err != nil || term != e.GetTerm() {
				t.Fatalf("term of %d: %d, %v; the entry says %d", e.GetIndex(), term, err, e.GetTerm())
			}
			fmt.Fprintf(&b, "%d:%d:%d:%s,", e.GetIndex(), e.GetTerm(), e.GetType(), e.Data)
		}
	}
	return b.String()
}

// segments returns the names of dir's segment files.
func segments(t testing.TB, fs vfs.FS, dir string) []string {
	t.Helper()
	seqs, err := listSegments(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range seqs {
		names = append(names, segmentName(s))
	}
	return names
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"default segments", Options{}},
		{"4KiB segments", Options{SegmentBytes: 4 << 10}},
		{"4KiB segments zeroed 1KiB ahead", Options{SegmentBytes: 4 << 10, zeroAhead: 1 << 10}},
		{"no sync", Options{SegmentBytes: 4 << 10, NoSync: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			if ok, err := Exists(fs, "/wal"); ok || err != nil {
				t.Fatalf("Exists before Open: %v, %v", ok, err)
			}
			l := mustOpen(t, fs, "/wal", tc.opts)
			if got, want := render(t, l), "hs 0/0/0; compacted 0/0; "; got != want {
				t.Fatalf("empty log: %q, want %q", got, want)
			}
			var next uint64 = 1
			for i := range 60 {
				var es []*raftpb.Entry
				for j := range 1 + i%4 {
					e := ent(next, 1+uint64(i/20), payload(next, 1, (i*37+j*11)%300))
					if j == 1 {
						e.Type = raftpb.EntryConfChange.Enum()
					}
					es = append(es, e)
					next++
				}
				var h *raftpb.HardState
				if i%3 != 0 {
					h = hs(1+uint64(i/20), next/2)
				}
				mustSave(t, l, h, es, i%2 == 0)
			}
			mustSave(t, l, hs(9, 7), nil, true) // a HardState alone
			want := render(t, l)
			if n := len(segments(t, fs, "/wal")); tc.opts.SegmentBytes != 0 && n < 4 {
				t.Fatalf("%d segments, want several", n)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if ok, err := Exists(fs, "/wal"); !ok || err != nil {
				t.Fatalf("Exists after Open: %v, %v", ok, err)
			}
			l = mustOpen(t, fs, "/wal", tc.opts)
			defer l.Close()
			if got := render(t, l); got != want {
				t.Fatalf("after reopen:\n%s\nwant\n%s", got, want)
			}
			if h := l.HardState(); h.GetTerm() != 9 || h.GetCommit() != 7 {
				t.Fatalf("hard state %v", h)
			}
			// Reads of every length from every start agree with the whole.
			all, err := l.Entries(1, l.LastIndex()+1, 1<<62)
			if err != nil {
				t.Fatal(err)
			}
			for lo := uint64(1); lo <= l.LastIndex(); lo += 7 {
				for hi := lo + 1; hi <= l.LastIndex()+1; hi += 13 {
					es, err := l.Entries(lo, hi, 1<<62)
					if err != nil {
						t.Fatal(err)
					}
					for k, e := range es {
						if !proto.Equal(e, all[lo-1+uint64(k)]) {
							t.Fatalf("Entries(%d, %d)[%d] = %v, want %v", lo, hi, k, e, all[lo-1+uint64(k)])
						}
					}
				}
			}
		})
	}
}

func TestConflictingSuffix(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"one segment", Options{}},
		// 6..10 lie in later segments than 1..5, and 6..8 at term 2 in
		// later ones still.
		{"tiny segments", Options{SegmentBytes: 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			l := mustOpen(t, fs, "/wal", tc.opts)
			for i := uint64(1); i <= 10; i++ {
				mustSave(t, l, hs(1, 0), ents(i, i, 1, 40), true)
			}
			mustSave(t, l, hs(2, 5), ents(6, 8, 2, 40), true)
			check := func(l *Log) {
				t.Helper()
				if last := l.LastIndex(); last != 8 {
					t.Fatalf("last index %d, want 8", last)
				}
				for i := uint64(1); i <= 8; i++ {
					want := uint64(1)
					if i >= 6 {
						want = 2
					}
					if term, err := l.Term(i); err != nil || term != want {
						t.Fatalf("term of %d: %d, %v; want %d", i, term, err, want)
					}
				}
				if _, err := l.Term(9); !errors.Is(err, raft.ErrUnavailable) {
					t.Fatalf("term of 9: %v, want ErrUnavailable", err)
				}
				es, err := l.Entries(5, 9, 1<<62)
				if err != nil {
					t.Fatal(err)
				}
				for k, e := range es {
					i := 5 + uint64(k)
					if want := payload(i, e.GetTerm(), 40); string(e.Data) != want || e.GetIndex() != i {
						t.Fatalf("entry %d: %d %q, want %q", i, e.GetIndex(), e.Data, want)
					}
				}
			}
			check(l)
			want := render(t, l)
			l.Close()
			l = mustOpen(t, fs, "/wal", tc.opts)
			defer l.Close()
			check(l)
			if got := render(t, l); got != want {
				t.Fatalf("after reopen:\n%s\nwant\n%s", got, want)
			}
			// The log goes on from the new suffix.
			mustSave(t, l, nil, ents(9, 9, 2, 40), true)
			if l.LastIndex() != 9 {
				t.Fatalf("last index %d, want 9", l.LastIndex())
			}
		})
	}
}

func TestSaveRefusesGaps(t *testing.T) {
	l := mustOpen(t, vfs.NewMem(), "/wal", Options{})
	defer l.Close()
	mustSave(t, l, nil, ents(1, 3, 1, 10), true)
	if err := l.Save(nil, ents(5, 6, 1, 10), true); err == nil {
		t.Fatal("append at 5 after 3 succeeded")
	}
	if err := l.Save(nil, []*raftpb.Entry{ent(4, 1, ""), ent(6, 1, "")}, true); err == nil {
		t.Fatal("entries 4, 6 succeeded")
	}
	if l.LastIndex() != 3 {
		t.Fatalf("last index %d after refused saves", l.LastIndex())
	}
}

func TestCompact(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{SegmentBytes: 1 << 10}
	l := mustOpen(t, fs, "/wal", opts)
	for i := uint64(1); i <= 100; i += 4 {
		mustSave(t, l, hs(1+i/50, i), ents(i, i+3, 1+i/50, 100), true)
	}
	before := segments(t, fs, "/wal")
	if len(before) < 10 {
		t.Fatalf("%d segments, want many", len(before))
	}
	if err := l.Compact(50); err != nil {
		t.Fatal(err)
	}
	after := segments(t, fs, "/wal")
	if len(after) >= len(before) || after[len(after)-1] != before[len(before)-1] {
		t.Fatalf("compaction at 50: segments %v, before %v", after, before)
	}
	// The oldest segment left holds an entry above 50 (it was not deleted
	// because of it), and those before it are gone.
	if l.segs[0].maxIndex <= 50 {
		t.Fatalf("oldest segment left holds entries up to %d only", l.segs[0].maxIndex)
	}
	if ci, ct := l.Compacted(); ci != 50 || ct != 1 {
		t.Fatalf("compacted %d/%d, want 50/1", ci, ct)
	}
	if err := l.Compact(40); err != nil { // below: a no-op
		t.Fatal(err)
	}
	if err := l.Compact(101); err == nil {
		t.Fatal("compaction past the last index succeeded")
	}

	check := func(l *Log) {
		t.Helper()
		for _, tc := range []struct {
			i       uint64
			want    uint64
			wantErr error
		}{
			{49, 0, raft.ErrCompacted},
			{50, 1, nil},
			{52, 1, nil},
			{53, 2, nil},
			{100, 2, nil},
			{101, 0, raft.ErrUnavailable},
		} {
			term, err := l.Term(tc.i)
			if !errors.Is(err, tc.wantErr) || term != tc.want {
				t.Errorf("Term(%d) = %d, %v; want %d, %v", tc.i, term, err, tc.want, tc.wantErr)
			}
		}
		for _, tc := range []struct {
			lo, hi, maxSize uint64
			want            int
			wantErr         error
		}{
			{50, 52, 1 << 62, 0, raft.ErrCompacted},
			{51, 102, 1 << 62, 0, raft.ErrUnavailable},
			{51, 101, 1 << 62, 50, nil},
			{51, 51, 1 << 62, 0, nil},
			// Each entry counts 100 bytes of data + 16.
			{51, 101, 0, 1, nil},
			{51, 101, 116, 1, nil},
			{51, 101, 231, 1, nil},
			{51, 101, 232, 2, nil},
			{51, 101, 10 * 116, 10, nil},
			{60, 61, 1, 1, nil},
		} {
			es, err := l.Entries(tc.lo, tc.hi, tc.maxSize)
			if !errors.Is(err, tc.wantErr) || len(es) != tc.want {
				t.Errorf("Entries(%d, %d, %d) = %d entries, %v; want %d, %v", tc.lo, tc.hi, tc.maxSize, len(es), err, tc.want, tc.wantErr)
			}
			for k, e := range es {
				if e.GetIndex() != tc.lo+uint64(k) {
					t.Fatalf("Entries(%d, ...)[%d] has index %d", tc.lo, k, e.GetIndex())
				}
			}
		}
		if h := l.HardState(); h.GetCommit() < 50 {
			t.Errorf("commit %d below the compaction point", h.GetCommit())
		}
	}
	check(l)
	want := render(t, l)
	l.Close()
	l = mustOpen(t, fs, "/wal", opts)
	check(l)
	if got := render(t, l); got != want {
		t.Fatalf("after reopen:\n%s\nwant\n%s", got, want)
	}

	// Compacting everything leaves the active segment alone.
	if err := l.Compact(100); err != nil {
		t.Fatal(err)
	}
	if segs := segments(t, fs, "/wal"); len(segs) != 1 || segs[0] != segmentName(l.active().seq) {
		t.Fatalf("segments after compacting everything: %v", segs)
	}
	if l.FirstIndex() != 101 || l.LastIndex() != 100 {
		t.Fatalf("first %d last %d, want 101 100", l.FirstIndex(), l.LastIndex())
	}
	want = render(t, l)
	l.Close()
	l = mustOpen(t, fs, "/wal", opts)
	defer l.Close()
	if got := render(t, l); got != want {
		t.Fatalf("after reopen:\n%s\nwant\n%s", got, want)
	}
	mustSave(t, l, nil, ents(101, 101, 3, 10), true)
}

// TestCompactKeepsAPrefix: a segment whose entries are all compacted but
// that replaced entries of an older segment still kept must stay too, or
// replay would bring the replaced entries back.
func TestCompactKeepsAPrefix(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{SegmentBytes: 300}
	l := mustOpen(t, fs, "/wal", opts)
	mustSave(t, l, hs(1, 0), ents(1, 20, 1, 10), true) // a segment of 1..20
	mustSave(t, l, hs(2, 5), ents(5, 5, 2, 400), true) // the next: 5 replaces 5..20
	if err := l.Compact(5); err != nil {
		t.Fatal(err)
	}
	if n := len(segments(t, fs, "/wal")); n != 3 {
		t.Fatalf("%d segments, want all 3 kept", n)
	}
	l = reopen(t, l, fs, opts)
	defer l.Close()
	if l.LastIndex() != 5 {
		t.Fatalf("last index %d, want 5", l.LastIndex())
	}
}

func TestReset(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{SegmentBytes: 1 << 10}
	l := mustOpen(t, fs, "/wal", opts)
	mustSave(t, l, hs(2, 10), ents(1, 30, 2, 100), true)
	if err := l.Compact(5); err != nil {
		t.Fatal(err)
	}
	if err := l.Reset(4, 1, nil); err == nil {
		t.Fatal("reset below the compaction point succeeded")
	}
	if err := l.Reset(50, 3, hs(3, 10)); err != nil {
		t.Fatal(err)
	}
	check := func(l *Log) {
		t.Helper()
		if l.FirstIndex() != 51 || l.LastIndex() != 50 {
			t.Fatalf("first %d last %d, want 51 50", l.FirstIndex(), l.LastIndex())
		}
		if ci, ct := l.Compacted(); ci != 50 || ct != 3 {
			t.Fatalf("compacted %d/%d", ci, ct)
		}
		if h := l.HardState(); h.GetTerm() != 3 || h.GetCommit() != 50 {
			t.Fatalf("hard state %v", h)
		}
		if term, err := l.Term(50); term != 3 || err != nil {
			t.Fatalf("Term(50) = %d, %v", term, err)
		}
		if _, err := l.Term(30); !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("Term(30): %v", err)
		}
		if _, err := l.Entries(51, 52, 1<<62); !errors.Is(err, raft.ErrUnavailable) {
			t.Fatalf("Entries(51, 52): %v", err)
		}
	}
	check(l)
	if segs := segments(t, fs, "/wal"); len(segs) != 1 {
		t.Fatalf("segments after reset: %v", segs)
	}
	l.Close()
	l = mustOpen(t, fs, "/wal", opts)
	check(l)
	mustSave(t, l, hs(3, 50), ents(51, 52, 3, 10), true)
	l = reopen(t, l, fs, opts)
	defer l.Close()
}

// TestZeroedAhead: a segment's file is zeroed past its records, up to the
// zeroing distance, and no further than the segment size.
func TestZeroedAhead(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      Options
		saves     int
		wantBytes int64
	}{
		{"first save", Options{SegmentBytes: 1 << 20, zeroAhead: 4 << 10}, 1, 4 << 10},
		{"past the first zeros", Options{SegmentBytes: 1 << 20, zeroAhead: 4 << 10}, 40, 12 << 10},
		{"capped by the segment size", Options{SegmentBytes: 2 << 10}, 1, 2 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			l := mustOpen(t, fs, "/wal", tc.opts)
			defer l.Close()
			for i := range tc.saves {
				mustSave(t, l, nil, ents(uint64(i)+1, uint64(i)+1, 1, 200), true)
			}
			st, err := l.active().f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() != tc.wantBytes || l.zeroed != tc.wantBytes {
				t.Fatalf("file of %d bytes, zeroed to %d; want %d (records end at %d)", st.Size(), l.zeroed, tc.wantBytes, l.off)
			}
			if nz, err := nonZero(l.active(), l.off, st.Size()); nz || err != nil {
				t.Fatalf("non-zero bytes past the records: %v, %v", nz, err)
			}
		})
	}
}

func TestClosed(t *testing.T) {
	l := mustOpen(t, vfs.NewMem(), "/wal", Options{})
	mustSave(t, l, nil, ents(1, 2, 1, 10), true)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Save(nil, ents(3, 3, 1, 10), true); !errors.Is(err, errClosed) {
		t.Fatalf("Save after Close: %v", err)
	}
	if _, err := l.Entries(1, 2, 100); !errors.Is(err, errClosed) {
		t.Fatalf("Entries after Close: %v", err)
	}
}

// reopen closes l, opens the log in /wal again and fails the test unless
// it holds what l held.
func reopen(t *testing.T, l *Log, fs vfs.FS, opts Options) *Log {
	t.Helper()
	want := render(t, l)
	l.Close()
	l = mustOpen(t, fs, "/wal", opts)
	if got := render(t, l); got != want {
		t.Fatalf("after reopen:\n%s\nwant\n%s", got, want)
	}
	return l
}
