package pebble

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/metastore/metastore/internal/storage"
)

// memOptions open an engine on fs with small memtables, so that a short
// workload flushes and rotates WALs too. New WALs are zeroed before they are
// written (zerowal.go), so the crash clones replay logs that end in zeros.
func memOptions(fs vfs.FS) Options {
	return Options{FS: fs, CacheSize: 4 << 20, MemTableSize: 256 << 10, inlineWALZeroing: true}
}

// crashWorkload commits batch i as the pair a/i and b/i (a batch is never
// seen in part), with a value big enough to span WAL blocks.
func commitPair(t *testing.T, e *Engine, i int, sync bool) {
	t.Helper()
	b := e.NewBatch()
	defer b.Close()
	v := []byte(fmt.Sprintf("%d/%s", i, strings.Repeat("v", 300)))
	for _, p := range []string{"a/", "b/"} {
		if err := b.Set([]byte(fmt.Sprintf("%s%06d", p, i)), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(sync); err != nil {
		t.Fatalf("commit %d: %v", i, err)
	}
}

// recovered checks that e holds the pairs 0..n-1 for some n > acked, each
// whole and with its value (a prefix of the commit sequence: exactly what
// replaying the log up to some point gives), and returns n.
func recovered(t *testing.T, e *Engine, acked int) int {
	t.Helper()
	it, err := e.NewIter(storage.IterOptions{LowerBound: []byte("a/"), UpperBound: []byte("a0")})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if want := fmt.Sprintf("a/%06d", n); string(it.Key()) != want {
			t.Fatalf("recovered %s where %s was expected: not a prefix of the commits", it.Key(), want)
		}
		v, err := e.Get([]byte(fmt.Sprintf("b/%06d", n)))
		if err != nil || string(v) != string(it.Value()) || !strings.HasPrefix(string(v), fmt.Sprintf("%d/", n)) {
			t.Fatalf("batch %d recovered in part: b/ %q, %v", n, v, err)
		}
		n++
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	if n <= acked {
		t.Fatalf("synced commit %d lost: only %d commits recovered", acked, n)
	}
	return n
}

// TestCrashAtEverySyncBoundary crashes the engine (Pebble's crash-cloning
// memory file system) after every synced commit of a workload that mixes
// synced and unsynced commits, keeping none, half or all of the unsynced
// data, and reopens the copy: every synced commit is there, the state is a
// prefix of the commits with no batch in part, and the torn tails that
// unsynced data leaves are accepted (the synced-sequence mark never makes
// a legitimate crash look like a lost write).
func TestCrashAtEverySyncBoundary(t *testing.T) {
	seed := uint64(20261206) // fixed: the same crash points every run (a failure replays)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	fs := vfs.NewCrashableMem()
	e := openAt(t, "/db", memOptions(fs))
	acked, crashes := -1, 0
	for i := range 150 {
		sync := rng.IntN(3) != 0
		commitPair(t, e, i, sync)
		if !sync {
			continue
		}
		acked = i
		for _, keep := range []int{0, 50, 100} {
			clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: keep, RNG: rng})
			c, err := Open("/db", memOptions(clone))
			if err != nil {
				t.Fatalf("crash after synced commit %d keeping %d%% of unsynced data: reopen: %v", i, keep, err)
			}
			n := recovered(t, c, acked)
			if keep == 100 && n != i+1 {
				t.Fatalf("a crash keeping all data recovered %d commits of %d", n, i+1)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			crashes++
		}
	}
	t.Logf("%d crashes at %d sync boundaries, every synced commit recovered", crashes, crashes/3)
}

// newestWAL returns the path of the newest WAL in dir on fs and where its
// records end: the file may go on with zeros (zerowal.go).
func newestWAL(t *testing.T, fs vfs.FS, dir string) (string, int64) {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			logs = append(logs, n)
		}
	}
	if len(logs) == 0 {
		t.Fatalf("no WAL in %s: %v", dir, names)
	}
	sort.Strings(logs)
	p := filepath.Join(dir, logs[len(logs)-1])
	data, err := readAll(fs, p)
	if err != nil {
		t.Fatal(err)
	}
	end := len(data)
	for end > 0 && data[end-1] == 0 {
		end--
	}
	return p, int64(end)
}

// flipByte inverts the byte at off of the file name on fs.
func flipByte(t *testing.T, fs vfs.FS, name string, off int64) {
	t.Helper()
	f, err := fs.OpenReadWrite(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptedWALTailRefused: after a process crash (all written data
// kept), a damaged byte in the last synced record of the newest WAL makes
// Pebble drop that record as if it were torn; Open must refuse with
// ErrLostSyncedWrites rather than serve the store without it. (Torn tails
// of unsynced records, which must be accepted, are what
// TestCrashAtEverySyncBoundary's partial crash clones produce.)
func TestCorruptedWALTailRefused(t *testing.T) {
	const n = 40
	fs := vfs.NewCrashableMem()
	e := openAt(t, "/db", memOptions(fs))
	for i := range n {
		commitPair(t, e, i, true)
	}

	t.Run("Synced", func(t *testing.T) {
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 2))})
		wal, end := newestWAL(t, clone, "/db")
		flipByte(t, clone, wal, end-50) // inside the last record: the last synced commit
		c, err := Open("/db", memOptions(clone))
		if err == nil {
			got := recovered(t, c, -1)
			_ = c.Close()
			t.Fatalf("opened a store whose WAL lost a synced record (%d of %d commits recovered)", got, n)
		}
		if !errors.Is(err, ErrLostSyncedWrites) {
			t.Fatalf("open: %v, want ErrLostSyncedWrites", err)
		}
		t.Logf("refused: %v", err)
	})
}
