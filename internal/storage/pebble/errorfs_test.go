package pebble

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// Environment of the child process in TestIOErrorLosesNoAcknowledgedWrite.
const (
	ioErrDirEnv   = "METASTORE_PEBBLE_IOERR_DIR"
	ioErrAfterEnv = "METASTORE_PEBBLE_IOERR_AFTER"
)

// TestIOErrorLosesNoAcknowledgedWrite runs a child that commits synced
// batches on an engine whose file system (Pebble's errorfs) fails every
// write and sync of the WAL after a random number of them. The child must
// stop acknowledging: a commit returns an error, or Pebble ends the process
// (its fatal path after a failed WAL write). The parent then reopens the
// directory on the real file system: every batch the child acknowledged is
// there, whole. On a real disk the refused writes may have partly reached
// the file; what matters is that nothing acknowledged is missing.
func TestIOErrorLosesNoAcknowledgedWrite(t *testing.T) {
	if dir := os.Getenv(ioErrDirEnv); dir != "" {
		after, _ := strconv.Atoi(os.Getenv(ioErrAfterEnv))
		ioErrChild(dir, int64(after))
		return
	}
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	seed := uint64(20261206) // fixed: the same crash points every run (a failure replays)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for round := range 3 {
		after := 5 + rng.IntN(200)
		t.Run(fmt.Sprintf("round%d-after%d", round, after), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			cmd, stdout, stderr := startChild(t, "TestIOErrorLosesNoAcknowledgedWrite", ioErrDirEnv+"="+dir, ioErrAfterEnv+"="+strconv.Itoa(after))
			last, refused := -1, ""
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				line := sc.Text()
				if idx, ok := strings.CutPrefix(line, "ack "); ok {
					i, err := strconv.Atoi(idx)
					if err != nil || i != last+1 {
						t.Fatalf("child line %q after ack %d", line, last)
					}
					last = i
				} else if msg, ok := strings.CutPrefix(line, "refused "); ok {
					refused = msg
				}
			}
			err := cmd.Wait()
			switch {
			case refused != "":
				t.Logf("commit %d refused: %s", last+1, refused)
			case err != nil:
				t.Logf("child stopped after ack %d: %v: %.300s", last, err, stderr.String())
			default:
				t.Fatalf("child acknowledged every commit (%d) although WAL writes failed\n%s", last+1, stderr.String())
			}
			e, err := Open(dir, Options{CacheSize: 8 << 20})
			if err != nil {
				t.Logf("reopen refused (nothing served): %v", err)
				return
			}
			defer e.Close()
			n := recovered(t, e, last)
			t.Logf("%d acknowledged commits, %d recovered", last+1, n)
		})
	}
}

// ioErrChild commits synced pairs until a commit fails, printing
// "ack <i>" after each success and "refused <error>" on failure.
func ioErrChild(dir string, after int64) {
	var walOps atomic.Int64
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !strings.HasSuffix(op.Path, ".log") {
			return nil
		}
		// Counted are Pebble's own writes only: the zeroing of new logs
		// (zerowal.go) writes and syncs from its own goroutine, at times
		// that differ between runs. From the failing write on, every write
		// and sync of a log fails, the zeroing's too.
		switch op.Kind {
		case errorfs.OpFileWrite:
			if walOps.Add(1) > after {
				return errorfs.ErrInjected
			}
		case errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if walOps.Load() > after {
				return errorfs.ErrInjected
			}
		}
		return nil
	})
	e, err := Open(dir, Options{FS: errorfs.Wrap(vfs.Default, inj), CacheSize: 8 << 20, MemTableSize: 256 << 10})
	if err != nil {
		fmt.Printf("refused open: %v\n", err)
		os.Exit(0)
	}
	v := strings.Repeat("v", 300)
	for i := range 5000 {
		b := e.NewBatch()
		for _, p := range []string{"a/", "b/"} {
			_ = b.Set([]byte(fmt.Sprintf("%s%06d", p, i)), []byte(fmt.Sprintf("%d/%s", i, v)))
		}
		if err := b.Commit(true); err != nil {
			fmt.Printf("refused %v\n", err)
			os.Exit(0)
		}
		_ = b.Close()
		fmt.Printf("ack %d\n", i)
	}
	os.Exit(0)
}
