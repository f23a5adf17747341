//go:build tools

// Package tools pins promtool, which scripts/check-deploy.sh uses to check
// and unit-test the Prometheus alert rules in deploy/prometheus. A module of
// its own: Prometheus pulls in many dependencies that must not move the
// versions of the pinned etcd tools.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
