// Command raftdump prints the Raft log of a metastore data dir for etcd's
// robustness suite, whose reader of persisted requests only knows etcd's
// WAL files (tests/etcdrobustness/run.sh patches it to call this command
// for a data dir without one). The member may still be running: its Pebble
// directory is copied first (the copy is what a crash at that moment would
// leave) and the copy is opened.
//
// Output: the HardState, then every log entry it holds (with those that
// log compaction archived, see raftlog.ReadPersisted), each as a uvarint
// length followed by the protobuf message (go.etcd.io/raft/v3/raftpb).
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage/pebble"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: raftdump DATA_DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "raftdump:", err)
		os.Exit(1)
	}
}

func run(dataDir string, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "raftdump-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "pebble")
	if err := copyDir(filepath.Join(dataDir, "member", "pebble"), dir); err != nil {
		return err
	}
	// NoSync: a copy of a running store may end before its synced-sequence
	// mark (copied later); the mark's check is for the member's own restarts.
	eng, err := pebble.Open(dir, pebble.Options{NoSync: true, CacheSize: 8 << 20})
	if err != nil {
		return err
	}
	defer eng.Close()
	// The archive of trimmed entries (METASTORE_TEST_RETAIN_RAFT_LOG, which
	// run.sh passes to the members) and the live log: the suite merges the
	// members' logs from index 1.
	hs, ents, err := raftlog.ReadPersisted(eng)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	if err := write(w, hs); err != nil {
		return err
	}
	for _, e := range ents {
		if err := write(w, e); err != nil {
			return err
		}
	}
	return w.Flush()
}

func write(w *bufio.Writer, m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := w.Write(binary.AppendUvarint(nil, uint64(len(b)))); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// copyDir copies the regular files of src into dst, leaving out Pebble's
// LOCK (held by a running member).
func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == "LOCK" || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			if os.IsNotExist(err) {
				continue // removed meanwhile (an obsolete file)
			}
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}
