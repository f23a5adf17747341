//go:build tools

// Package tools pins staticcheck (honnef.co/go/tools), the linter
// scripts/test.sh runs over the main module with its default checks. A
// module of its own so its dependencies never move the pinned etcd tools.
package tools

import _ "honnef.co/go/tools/cmd/staticcheck"
