// Package rpc implements etcd's v3 gRPC services (KV, Watch, Lease,
// Maintenance, Cluster, lock and election) on top of the backend. Each
// service validates its request as etcd's v3rpc does, calls the backend,
// and maps every error through the one table in errors.go, because clientv3
// recognises etcd's errors by their exact message strings.
package rpc
