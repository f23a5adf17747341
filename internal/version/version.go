package version

import (
	"fmt"
	"io"
	"runtime"
)

const (
	// EtcdAPIVersion is the etcd release whose API and behaviour metastore
	// matches. It is what Maintenance.Status and /version report as the
	// server version.
	EtcdAPIVersion = "3.7.3"
	// ClusterVersion is the cluster version reported by /version
	// ("etcdcluster"); etcd reports major.minor.0 there.
	ClusterVersion = "3.7.0"
	// StorageVersion is the storage version reported by Status and /version
	// ("storage"); etcd reports major.minor.0 there.
	StorageVersion = "3.7.0"
	// Version is metastore's own release version.
	Version = "0.1.0"
)

// GitSHA is the commit the binary was built from. It is a variable so that a
// release build can set it with
// -ldflags "-X github.com/metastore/metastore/internal/version.GitSHA=<sha>".
var GitSHA = "metastore"

// Print writes the --version output: etcd's four lines first, in etcd's exact
// format (tools parse the "etcd Version:" line), then metastore's own.
func Print(w io.Writer) error {
	_, err := fmt.Fprintf(w,
		"etcd Version: %s\nGit SHA: %s\nGo Version: %s\nGo OS/Arch: %s/%s\nmetastore Version: %s\n",
		EtcdAPIVersion, GitSHA, runtime.Version(), runtime.GOOS, runtime.GOARCH, Version)
	return err
}
