package migrate

import (
	"context"
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/migrate/mode"
	"github.com/metastore/metastore/internal/storage/memory"
)

type proposer struct {
	res apply.Result
	err error
	got *pb.InternalRaftRequest
}

func (p *proposer) Propose(_ context.Context, r *pb.InternalRaftRequest) (apply.Result, error) {
	p.got = r
	return p.res, p.err
}

// A member's cut-over is the end request through Raft; its outcome is the
// applied request's, and a proposal that failed without a gRPC status is
// Unavailable (retry), one with a status keeps it.
func TestMemberGuardCutover(t *testing.T) {
	refused := errors.New("wrong token")
	cases := []struct {
		name string
		p    proposer
		code codes.Code
	}{
		{"applied", proposer{}, codes.OK},
		{"applied with a failure", proposer{res: apply.Result{Err: refused}}, codes.Unknown},
		{"not proposed", proposer{err: errors.New("stopping")}, codes.Unavailable},
		{"not proposed, with a status", proposer{err: status.Error(codes.DeadlineExceeded, "slow")}, codes.DeadlineExceeded},
	}
	for _, c := range cases {
		g := NewMemberGuard(memory.New(), &c.p, zap.NewNop())
		err := g.end(context.Background(), "tok")
		if status.Code(err) != c.code {
			t.Errorf("%s: err %v, want code %v", c.name, err, c.code)
		}
		if tok, ok := mode.IsEnd(c.p.got); !ok || tok != "tok" {
			t.Errorf("%s: proposed %v, want the end request", c.name, c.p.got)
		}
	}
	// A member with no migration state refuses writes until it has some.
	if _, err := NewMemberGuard(memory.New(), &proposer{}, zap.NewNop()).marker(); !errors.Is(err, ErrStateUnknown) {
		t.Errorf("fresh member: %v, want %v", err, ErrStateUnknown)
	}
}
