package rpc

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/alarm"
	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/backend"
	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/txn"
)

// errorTable is the one place domain errors become etcd's gRPC errors.
var errorTable = []struct {
	domain error
	grpc   error
}{
	{mvcc.ErrCompacted, rpctypes.ErrGRPCCompacted},
	{mvcc.ErrFutureRev, rpctypes.ErrGRPCFutureRev},
	{txn.ErrKeyNotFound, rpctypes.ErrGRPCKeyNotFound},
	{txn.ErrLeaseNotFound, rpctypes.ErrGRPCLeaseNotFound},
	{lease.ErrLeaseNotFound, rpctypes.ErrGRPCLeaseNotFound},
	{lease.ErrLeaseExists, rpctypes.ErrGRPCLeaseExist},
	{lease.ErrLeaseTTLTooLarge, rpctypes.ErrGRPCLeaseTTLTooLarge},
	// Unavailable, like etcd's "not leader": clients try another member.
	{lease.ErrNotPrimary, status.Error(codes.Unavailable, lease.ErrNotPrimary.Error())},
	{alarm.ErrNoSpace, rpctypes.ErrGRPCNoSpace},
	{alarm.ErrCorrupt, rpctypes.ErrGRPCCorrupt},
	{backend.ErrTimeout, rpctypes.ErrGRPCTimeout},
	{backend.ErrStopped, rpctypes.ErrGRPCStopped},
	{backend.ErrRequestTooLarge, rpctypes.ErrGRPCRequestTooLarge},
	{backend.ErrNoLeader, rpctypes.ErrGRPCNoLeader},
	{auth.ErrRootUserNotExist, rpctypes.ErrGRPCRootUserNotExist},
	{auth.ErrRootRoleNotExist, rpctypes.ErrGRPCRootRoleNotExist},
	{auth.ErrUserAlreadyExist, rpctypes.ErrGRPCUserAlreadyExist},
	{auth.ErrUserEmpty, rpctypes.ErrGRPCUserEmpty},
	{auth.ErrUserNotFound, rpctypes.ErrGRPCUserNotFound},
	{auth.ErrRoleAlreadyExist, rpctypes.ErrGRPCRoleAlreadyExist},
	{auth.ErrRoleNotFound, rpctypes.ErrGRPCRoleNotFound},
	{auth.ErrRoleEmpty, rpctypes.ErrGRPCRoleEmpty},
	{auth.ErrAuthFailed, rpctypes.ErrGRPCAuthFailed},
	// etcd has no gRPC error of its own for this one and sends it as Unknown.
	{auth.ErrNoPasswordUser, status.Error(codes.Unknown, auth.ErrNoPasswordUser.Error())},
	{auth.ErrPermissionNotGiven, rpctypes.ErrGRPCPermissionNotGiven},
	{auth.ErrPermissionDenied, rpctypes.ErrGRPCPermissionDenied},
	{auth.ErrRoleNotGranted, rpctypes.ErrGRPCRoleNotGranted},
	{auth.ErrPermissionNotGranted, rpctypes.ErrGRPCPermissionNotGranted},
	{auth.ErrAuthNotEnabled, rpctypes.ErrGRPCAuthNotEnabled},
	{auth.ErrInvalidAuthToken, rpctypes.ErrGRPCInvalidAuthToken},
	{auth.ErrInvalidAuthMgmt, rpctypes.ErrGRPCInvalidAuthMgmt},
	{auth.ErrAuthOldRevision, rpctypes.ErrGRPCAuthOldRevision},
	{membership.ErrIDRemoved, rpctypes.ErrGRPCMemberNotFound},
	{membership.ErrIDNotFound, rpctypes.ErrGRPCMemberNotFound},
	{membership.ErrIDExists, rpctypes.ErrGRPCMemberExist},
	{membership.ErrPeerURLExists, rpctypes.ErrGRPCPeerURLExist},
	{membership.ErrMemberNotLearner, rpctypes.ErrGRPCMemberNotLearner},
	{membership.ErrTooManyLearners, rpctypes.ErrGRPCTooManyLearners},
	{membership.ErrBadURLs, rpctypes.ErrGRPCMemberBadURLs},
	{membership.ErrNotEnoughStarted, rpctypes.ErrGRPCMemberNotEnoughStarted},
	{membership.ErrUnhealthy, rpctypes.ErrGRPCUnhealthy},
	{membership.ErrLearnerNotReady, rpctypes.ErrGRPCLearnerNotReady},
	{membership.ErrNotLeader, rpctypes.ErrGRPCNotLeader},
	{context.Canceled, rpctypes.ErrGRPCCanceled},
	{context.DeadlineExceeded, rpctypes.ErrGRPCDeadlineExceeded},
}

// toGRPCError translates err for the wire. Errors that already carry a gRPC
// status (validation returns etcd's rpctypes values directly) pass through.
func toGRPCError(err error) error {
	if err == nil {
		return nil
	}
	for _, e := range errorTable {
		if errors.Is(err, e.domain) {
			return e.grpc
		}
	}
	// A status wrapped in context keeps the status's own message: clientv3
	// matches etcd's errors by exact string.
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Err()
	}
	return status.Error(codes.Unknown, err.Error())
}
