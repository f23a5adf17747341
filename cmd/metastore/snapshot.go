package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/metastore/metastore/server"
)

// runSnapshot handles `metastore snapshot restore FILE --data-dir DIR`,
// metastore's counterpart of `etcdutl snapshot restore` (etcdutl reads only
// bbolt files; metastore snapshots are Pebble checkpoints).
func runSnapshot(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 || args[0] != "restore" {
		fmt.Fprintln(stderr, "metastore: usage: metastore snapshot restore <file> --data-dir <dir>")
		return exitUsage
	}
	fs := flag.NewFlagSet("snapshot restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "directory to restore into (must be new or empty)")
	// Accept the file before or after the flags, as etcdutl does.
	rest := args[1:]
	var file string
	if len(rest) > 0 && len(rest[0]) > 0 && rest[0][0] != '-' {
		file, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return exitUsage
	}
	if file == "" && fs.NArg() == 1 {
		file = fs.Arg(0)
	}
	if file == "" || *dataDir == "" {
		fmt.Fprintln(stderr, "metastore: usage: metastore snapshot restore <file> --data-dir <dir>")
		return exitUsage
	}
	if err := server.RestoreSnapshot(file, *dataDir); err != nil {
		fmt.Fprintf(stderr, "metastore: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "restored snapshot %s into %s; start metastore with --data-dir %s to serve it as a new cluster\n", file, *dataDir, *dataDir)
	return exitOK
}
