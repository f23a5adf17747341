package maintenance

import (
	"context"
	"errors"
	"io"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/rpc"
	"github.com/metastore/metastore/internal/storage/memory"
)

var (
	_ rpc.MaintenanceBackend = (*Backend)(nil)
	_ rpc.Downgrader         = (*Backend)(nil)
)

// proposer applies every request with the same outcome and remembers the
// last one.
type proposer struct {
	got *pb.InternalRaftRequest
	res apply.Result
	err error
}

func (p *proposer) Propose(_ context.Context, r *pb.InternalRaftRequest) (apply.Result, error) {
	p.got = r
	return p.res, p.err
}

func TestAlarmGoesThroughRaft(t *testing.T) {
	applyErr, proposeErr := errors.New("applied with an error"), errors.New("not proposed")
	cases := []struct {
		name    string
		p       proposer
		wantErr error
	}{
		{"applied", proposer{res: apply.Result{Resp: &pb.AlarmResponse{Alarms: []*pb.AlarmMember{{MemberID: 7}}}}}, nil},
		{"application failed", proposer{res: apply.Result{Err: applyErr}}, applyErr},
		{"proposal failed", proposer{err: proposeErr}, proposeErr},
	}
	for _, c := range cases {
		b := New(Config{Proposer: &c.p})
		req := &pb.AlarmRequest{Action: pb.AlarmRequest_GET}
		resp, err := b.Alarm(context.Background(), req)
		if !errors.Is(err, c.wantErr) || c.p.got.GetAlarm() != req {
			t.Errorf("%s: err %v, proposed %v", c.name, err, c.p.got)
		}
		if c.wantErr == nil && (len(resp.GetAlarms()) != 1 || resp.Alarms[0].MemberID != 7) {
			t.Errorf("%s: response %v", c.name, resp)
		}
	}
	b := New(Config{Proposer: &proposer{res: apply.Result{Resp: &pb.PutResponse{}}}})
	if _, err := b.Alarm(context.Background(), &pb.AlarmRequest{}); err == nil {
		t.Error("a result of the wrong type accepted")
	}
}

type hasher struct{}

func (hasher) Hash(context.Context) (uint32, error) { return 1, nil }
func (hasher) HashByRev(_ context.Context, rev int64) (mvcc.HashResult, error) {
	if rev > 10 {
		return mvcc.HashResult{}, mvcc.ErrFutureRev
	}
	return mvcc.HashResult{Hash: 5, CompactRevision: 2, HashRevision: rev, Revision: 10}, nil
}

func TestHashKV(t *testing.T) {
	b := New(Config{Store: hasher{}})
	h, compact, hashRev, err := b.HashKV(context.Background(), 7)
	if err != nil || h != 5 || compact != 2 || hashRev != 7 {
		t.Fatalf("HashKV = %d %d %d %v", h, compact, hashRev, err)
	}
	if _, _, _, err := b.HashKV(context.Background(), 11); !errors.Is(err, mvcc.ErrFutureRev) {
		t.Fatalf("future revision: %v", err)
	}
}

func TestSnapshotStreamsTheEngine(t *testing.T) {
	eng := memory.New()
	b := New(Config{Engine: eng, ScratchDir: t.TempDir()})
	r, size, err := b.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != size || size == 0 {
		t.Fatalf("read %d of %d bytes: %v", n, size, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}
