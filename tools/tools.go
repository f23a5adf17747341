//go:build tools

// Package tools pins the reference etcd binaries and test suite that the
// metastore end-to-end harness drives. It is a separate module so that the
// main module never depends on etcd's server code.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "go.etcd.io/etcd/server/v3"
	_ "go.etcd.io/etcd/tests/v3/common"
)
