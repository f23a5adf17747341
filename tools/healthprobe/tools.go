//go:build tools

// Package tools pins grpc_health_probe, the standard gRPC health checking
// client that Kubernetes users point at etcd-compatible servers; the e2e
// reliability tests run it against metastore. A module of its own so its
// dependencies never move the pinned etcd tools.
package tools

import _ "github.com/grpc-ecosystem/grpc-health-probe"
