// Package gateway serves etcd's JSON gateway (POST /v3/..., and /v3beta/
// rewritten to /v3/) on the client port, translating HTTP/JSON to the gRPC
// services with etcd's own generated grpc-gateway handlers and etcd's
// marshaling options (proto names, no zero values, unknown fields
// discarded), so curl users and HTTP-only clients see etcd's JSON.
package gateway
