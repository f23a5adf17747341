package pebble

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestZeroingFileKeepsWrites: whatever the interleaving of Pebble's writes
// and the zeroing goroutine, the file holds every written byte at its
// offset, then only zeros, fewer than zeroAhead+zeroChunk; the zeroing never
// writes over a written byte.
func TestZeroingFileKeepsWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 20 {
		fs := zeroedWALFS{FS: vfs.NewMem()}
		name := fmt.Sprintf("%06d.log", round)
		f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		z, ok := f.(*zeroingFile)
		if !ok {
			t.Fatalf("Create(%s) returned %T, want a zeroing file", name, f)
		}
		var want []byte
		total := rng.IntN(3 << 20)
		for len(want) < total {
			p := make([]byte, 1+rng.IntN(8<<10))
			for i := range p {
				p[i] = byte(1 + rng.IntN(255)) // never zero: a zeroed byte shows
			}
			want = append(want, p...)
			if _, err := f.Write(bytes.Clone(p)); err != nil {
				t.Fatal(err)
			}
		}
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := readAll(fs, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) < len(want) || len(got) >= len(want)+zeroAhead+zeroChunk {
			t.Fatalf("round %d: file is %d bytes after %d written, want fewer than %d of zeros after them", round, len(got), len(want), zeroAhead+zeroChunk)
		}
		if !bytes.Equal(got[:len(want)], want) {
			t.Fatalf("round %d: written bytes changed (first difference at %d)", round, firstDiff(got, want))
		}
		if i := bytes.IndexFunc(got[len(want):], func(r rune) bool { return r != 0 }); i >= 0 {
			t.Fatalf("round %d: byte %d past the written end is not zero", round, len(want)+i)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestZeroedWALFSOnlyLogs: only new write-ahead logs are zeroed; tables,
// blob files and the manifest are created as they are.
func TestZeroedWALFSOnlyLogs(t *testing.T) {
	fs := zeroedWALFS{FS: vfs.NewMem(), inline: true}
	for _, name := range []string{"000001.sst", "000002.blob", "MANIFEST-000003", "OPTIONS-000004"} {
		f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := f.(*zeroingFile); ok {
			t.Errorf("%s is zeroed", name)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	f, err := fs.Create("000005.log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != zeroAhead { // inline: zeroed before Create returns
		t.Fatalf("new log is %d bytes, want %d of zeros", st.Size(), zeroAhead)
	}
	// Writes use up the zeros; once less than half is left, the next
	// chunk is zeroed (inline: before Write returns).
	if _, err := f.Write(make([]byte, zeroAhead/2)); err != nil {
		t.Fatal(err)
	}
	if st, err = f.Stat(); err != nil || st.Size() != zeroAhead {
		t.Fatalf("log is %v bytes (%v) after writing half the zeros, want %d", st.Size(), err, zeroAhead)
	}
	if _, err := f.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(fs, "000005.log")
	if err != nil {
		t.Fatal(err)
	}
	// Less than half left: chunks were added until zeroAhead was.
	written := zeroAhead/2 + 3
	if ahead := len(got) - written; ahead < zeroAhead || ahead >= zeroAhead+zeroChunk || string(got[zeroAhead/2:written]) != "abc" {
		t.Fatalf("log = %d bytes, %q after the first half, want \"abc\" there and %d to %d zeros after it", len(got), got[zeroAhead/2:written], zeroAhead, zeroAhead+zeroChunk)
	}
}

// TestZeroedWALSurvivesCrashes: a power loss (Pebble's crash clone, keeping
// no unsynced data) of a store whose logs end in zeros — the current one and
// the one before a memtable rotation — replays every synced commit; Pebble
// takes the zeros as the end of the log, not as corruption.
func TestZeroedWALSurvivesCrashes(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e := openAt(t, "/db", memOptions(fs))
	const n = 60
	for i := range n {
		commitPair(t, e, i, true)
		if i == n/2 {
			if err := e.db.Flush(); err != nil { // a new log after this
				t.Fatal(err)
			}
		}
	}
	clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	wal, end := newestWAL(t, clone, "/db")
	st, err := clone.Stat(wal)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() <= end {
		t.Fatalf("newest WAL %s: records end at %d of %d bytes: no zeroed tail to replay", wal, end, st.Size())
	}
	c, err := Open("/db", memOptions(clone))
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer c.Close()
	if got := recovered(t, c, n-1); got != n {
		t.Fatalf("recovered %d commits, want %d", got, n)
	}
}

// TestZeroedWALOnDisk: on the operating system's file system a new log is
// zeroed ahead and synced, Pebble's writes land from offset 0, and a store
// on the disk (zeroing in the background) reopens with every synced commit
// however far the zeroing had come when it closed. (The process-crash case
// is TestCrashKeepsAcknowledgedBatches, on the same file system.)
func TestZeroedWALOnDisk(t *testing.T) {
	dir := t.TempDir()
	const size = zeroAhead
	fs := zeroedWALFS{FS: vfs.Default, inline: true}
	name := filepath.Join(dir, "000001.log")
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("record")); err != nil {
		t.Fatal(err)
	}
	if err := f.SyncData(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(vfs.Default, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != size || string(got[:6]) != "record" || bytes.ContainsFunc(got[6:], func(r rune) bool { return r != 0 }) {
		t.Fatalf("log = %d bytes starting %q, want %d: the record, then zeros", len(got), got[:6], size)
	}

	db := filepath.Join(dir, "db")
	opts := Options{CacheSize: 4 << 20, MemTableSize: 1 << 20}
	e := openAt(t, db, opts)
	for i := range 50 {
		commitPair(t, e, i, true)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	c := openAt(t, db, opts)
	if got := recovered(t, c, 49); got != 50 {
		t.Fatalf("recovered %d commits, want 50", got)
	}
}
