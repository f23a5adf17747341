package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

func containsMsg(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

// MemberState asks the member c is connected to whether it is in migration
// mode, and its revision.
func MemberState(ctx context.Context, c *clientv3.Client) (migrating bool, rev int64, err error) {
	var md metadata.MD
	resp, err := pb.NewMaintenanceClient(c.ActiveConnection()).Status(ctx, &pb.StatusRequest{}, grpc.Header(&md))
	if err != nil {
		return false, 0, fmt.Errorf("migrate: status: %w", err)
	}
	v := md.Get(HeaderMigrating)
	if len(v) == 0 {
		return false, 0, errors.New("migrate: the server does not speak the migration protocol (not metastore?)")
	}
	return v[0] == "true", resp.Header.Revision, nil
}

// CutoverMember ends migration mode on the member c is connected to.
func CutoverMember(ctx context.Context, c *clientv3.Client, token string) error {
	ctx = metadata.AppendToOutgoingContext(ctx, HeaderToken, token, HeaderCutover, "1")
	migrating, _, err := MemberState(ctx, c)
	if err != nil {
		return err
	}
	if migrating {
		return errors.New("migrate: the member is still migrating after the cut-over request")
	}
	return nil
}
