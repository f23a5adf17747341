//go:build tools

// Package benchmark pins etcd's load generator (tools/benchmark). It lives in
// its own module because the latest published version (v3.6.8) of the module
// that contains it requires etcd v3.6 libraries, which conflict with the v3.7.3
// modules pinned in the parent tools module.
package benchmark

import (
	_ "go.etcd.io/etcd/v3/tools/benchmark"
)
