// Package httpapi serves etcd's HTTP endpoints beside gRPC on the client
// port: /health, /livez, /readyz (with per-check sub-paths, ?exclude= and
// ?verbose), /version and /metrics. Kubernetes probes and etcd's tooling
// read these with exact shapes, so the JSON and the "ok\n" bodies match
// etcd's byte for byte. AccessControl applies --host-whitelist (against DNS
// rebinding) and --cors to those requests as etcd does.
package httpapi
