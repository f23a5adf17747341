package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/snapshot"
)

const snapshotUsage = "metastore: usage: metastore snapshot restore <file> [--data-dir <dir>] [--name ...] [--initial-cluster ...] [--initial-cluster-token ...] [--initial-advertise-peer-urls ...] [--skip-hash-check] [--bump-revision N --mark-compacted] [--migrate-token T]"

// runSnapshot handles `metastore snapshot restore FILE --data-dir DIR`,
// metastore's counterpart of `etcdutl snapshot restore`, with its flags. It
// reads etcd's backend files (from etcd v3.5-v3.7 or from metastore) and the
// archives older metastore versions streamed.
func runSnapshot(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 || args[0] != "restore" {
		fmt.Fprintln(stderr, snapshotUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet("snapshot restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "directory to restore into (must be new or empty); default ${name}.metastore")
	walDir := fs.String("wal-dir", "", "accepted for etcdutl compatibility: metastore keeps its log in the data dir until started with --wal-dir")
	name := fs.String("name", "default", "name of the member that will serve the restored data")
	cluster := fs.String("initial-cluster", "", "initial cluster the restored member will bootstrap (default ${name}=http://localhost:2380)")
	token := fs.String("initial-cluster-token", "etcd-cluster", "initial cluster token of the new cluster")
	peerURLs := fs.String("initial-advertise-peer-urls", "http://localhost:2380", "this member's peer URLs")
	skipHash := fs.Bool("skip-hash-check", false, "restore a file without the SHA-256 trailer (a db file copied from an etcd data dir)")
	fs.Uint64("initial-memory-map-size", 0, "accepted for etcdutl compatibility; metastore does not use bbolt")
	bump := fs.Int64("bump-revision", 0, "raise the revision by this much after the restore")
	markCompacted := fs.Bool("mark-compacted", false, "compact at the raised revision (required with --bump-revision)")
	migrateToken := fs.String("migrate-token", "", "start in migration mode: client writes are refused until `metastore migrate cutover`, and `metastore migrate follow` with this token applies the live etcd's revisions (docs/migration.md)")
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
	} else if fs.NArg() > 0 {
		file = ""
	}
	if file == "" {
		fmt.Fprintln(stderr, snapshotUsage)
		return exitUsage
	}
	if *cluster == "" {
		*cluster = *name + "=" + *peerURLs
	}
	if *dataDir == "" {
		*dataDir = *name + config.DataDirSuffix
	}
	if err := verifyBootstrap(*name, *cluster, *peerURLs); err != nil {
		fmt.Fprintf(stderr, "metastore: %v\n", err)
		return exitUsage
	}
	if (*bump > 0) != *markCompacted || *bump < 0 {
		fmt.Fprintln(stderr, "metastore: --mark-compacted is required with --bump-revision > 0 and disallowed otherwise")
		return exitUsage
	}
	sum, err := snapshot.Restore(file, *dataDir, snapshot.RestoreOptions{SkipHashCheck: *skipHash, RevisionBump: *bump, MarkCompacted: *markCompacted,
		MigrateToken: *migrateToken})
	if err != nil {
		fmt.Fprintf(stderr, "metastore: snapshot restore: %v\n", err)
		return exitFailed
	}
	if sum.StorageVersion != "" {
		fmt.Fprintf(stdout, "restored etcd snapshot %s (storage version %s) into %s: %d versions up to revision %d, compacted at %d, %d leases, %d users, %d roles, %d alarms\n",
			file, sum.StorageVersion, *dataDir, sum.Versions, sum.Revision, sum.CompactRevision, sum.Leases, sum.Users, sum.Roles, sum.Alarms)
	} else {
		fmt.Fprintf(stdout, "restored snapshot %s into %s\n", file, *dataDir)
	}
	fmt.Fprintf(stdout, "start it with: metastore --data-dir %s --name %s --initial-cluster %s --initial-cluster-token %s --initial-advertise-peer-urls %s\n",
		*dataDir, *name, *cluster, *token, *peerURLs)
	if *walDir != "" {
		fmt.Fprintf(stdout, "and --wal-dir %s\n", *walDir)
	}
	return exitOK
}

// verifyBootstrap makes the checks etcdutl makes before a restore: the
// member is in --initial-cluster, with the peer URLs it advertises.
func verifyBootstrap(name, cluster, peerURLs string) error {
	var mine []string
	for _, entry := range strings.Split(cluster, ",") {
		n, u, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok || n == "" {
			return fmt.Errorf("--initial-cluster %q: entry %q is not name=url", cluster, entry)
		}
		if _, err := url.Parse(u); err != nil {
			return fmt.Errorf("--initial-cluster %q: %w", cluster, err)
		}
		if n == name {
			mine = append(mine, u)
		}
	}
	if len(mine) == 0 {
		return fmt.Errorf("couldn't find local name %q in the initial cluster configuration", name)
	}
	adv := strings.Split(peerURLs, ",")
	slices.Sort(adv)
	slices.Sort(mine)
	if !slices.Equal(adv, mine) {
		return errors.New("--initial-cluster has " + name + "=" + strings.Join(mine, ",") + " but missing from --initial-advertise-peer-urls=" + peerURLs)
	}
	return nil
}
