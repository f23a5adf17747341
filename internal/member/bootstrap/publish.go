package bootstrap

import (
	"context"
	"fmt"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/membership"
)

// Proposer replicates a request through Raft and returns its result.
type Proposer interface {
	Propose(ctx context.Context, r *pb.InternalRaftRequest) (apply.Result, error)
}

// Publish replicates this member's name and client URLs, as etcd does
// before it reports ready, so that every member lists every client URL (and
// counts this member as started, which the strict reconfiguration checks
// need). Nothing is proposed when the member list already says so.
func Publish(ctx context.Context, p Proposer, members *membership.Store, id uint64, name string, clientURLs []string) error {
	if m := members.Member(id); m != nil && m.Name == name && slices.Equal(m.ClientURLs, clientURLs) {
		return nil
	}
	req := &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
		Member_ID:        id,
		MemberAttributes: &membershippb.Attributes{Name: name, ClientUrls: clientURLs},
	}}
	if _, err := p.Propose(ctx, req); err != nil {
		return fmt.Errorf("bootstrap: publish member attributes: %w", err)
	}
	return nil
}
