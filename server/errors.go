package server

import (
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Errors the Server itself returns to services already carry etcd's gRPC
// status, so the rpc error table passes them through unchanged.
var (
	errNotLeader     = rpctypes.ErrGRPCNotLeader
	errBadTransferee = rpctypes.ErrGRPCBadLeaderTransferee
)
