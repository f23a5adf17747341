package status

import (
	"context"
	"errors"
	"reflect"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
	"github.com/metastore/metastore/internal/version"
)

type fakes struct {
	lead, term uint64
	members    map[uint64]*membership.Member
	alarms     []*pb.AlarmMember
	read       *pb.RangeRequest
	readRoot   bool
}

func (f *fakes) Leader() uint64                      { return f.lead }
func (f *fakes) Term() uint64                        { return f.term }
func (f *fakes) ClusterID() uint64                   { return 0xc1 }
func (f *fakes) Member(id uint64) *membership.Member { return f.members[id] }
func (f *fakes) IsLearner(id uint64) bool {
	m := f.members[id]
	return m != nil && m.IsLearner
}
func (f *fakes) Rev() int64                         { return 42 }
func (f *fakes) Get(pb.AlarmType) []*pb.AlarmMember { return f.alarms }
func (f *fakes) Usage() storage.Usage               { return storage.Usage{SizeBytes: 100, LiveBytes: 60} }
func (f *fakes) HardState() *raftpb.HardState {
	c := uint64(9)
	return &raftpb.HardState{Commit: &c}
}
func (f *fakes) AppliedIndex() uint64 { return 8 }
func (f *fakes) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	ai, _ := auth.FromContext(ctx)
	f.read, f.readRoot = r, ai != nil && ai.Username == "root"
	return &pb.RangeResponse{}, nil
}

func newFakes(f *fakes) (Header, Probe, Reporter) {
	return New(Config{Self: 2, Raft: f, Members: f, Store: f, Alarms: f, Engine: f, RaftLog: f, Applier: f, Reader: f, QuotaBytes: 1 << 30})
}

func TestStatus(t *testing.T) {
	f := &fakes{lead: 1, term: 3, members: map[uint64]*membership.Member{2: {ID: 2, IsLearner: true}},
		alarms: []*pb.AlarmMember{{MemberID: 2, Alarm: pb.AlarmType_NOSPACE}}}
	hdr, probe, rep := newFakes(f)
	st, err := rep.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != version.EtcdAPIVersion || st.DBSize != 100 || st.DBSizeInUse != 60 || st.DBSizeQuota != 1<<30 ||
		st.Leader != 1 || st.RaftIndex != 9 || st.RaftTerm != 3 || st.RaftAppliedIndex != 8 || !st.IsLearner {
		t.Errorf("status %+v", st)
	}
	if want := []string{"memberID:2 alarm:NOSPACE "}; !reflect.DeepEqual(st.Errors, want) {
		t.Errorf("errors %q, want %q", st.Errors, want)
	}
	if hdr.ClusterID() != 0xc1 || hdr.MemberID() != 2 || hdr.Term() != 3 || hdr.Rev() != 42 {
		t.Errorf("header %x %x %d %d", hdr.ClusterID(), hdr.MemberID(), hdr.Term(), hdr.Rev())
	}
	if !probe.HasLeader() || !probe.IsLearner() || !reflect.DeepEqual(probe.Alarms(), []string{"NOSPACE"}) {
		t.Errorf("probe: leader %v learner %v alarms %v", probe.HasLeader(), probe.IsLearner(), probe.Alarms())
	}
	if err := probe.Read(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if string(f.read.Key) != "health" || f.read.Limit != 1 || !f.read.Serializable || !f.readRoot {
		t.Errorf("health read %+v as root %v", f.read, f.readRoot)
	}
}

func TestStatusWithoutLeader(t *testing.T) {
	_, probe, rep := newFakes(&fakes{})
	st, _ := rep.Status(context.Background())
	if want := []string{"etcdserver: no leader"}; !reflect.DeepEqual(st.Errors, want) || st.IsLearner {
		t.Errorf("errors %q learner %v, want %q", st.Errors, st.IsLearner, want)
	}
	if probe.HasLeader() || probe.IsLearner() || probe.Alarms() != nil {
		t.Error("probe of a member without leader, membership or alarms")
	}
}

func TestCheckers(t *testing.T) {
	failure := errors.New("apply failed")
	cases := []struct {
		name   string
		lead   uint64
		failed error
		bad    []string
	}{
		{"healthy", 1, nil, nil},
		// etcd's gRPC health does not depend on a leader (health.go).
		{"no leader", 0, nil, nil},
		{"stopped", 1, failure, []string{"apply"}},
	}
	for _, c := range cases {
		_, probe, _ := newFakes(&fakes{lead: c.lead})
		var bad []string
		for _, ch := range probe.Checkers(memory.New(), func() error { return c.failed }) {
			if err := ch.Check(context.Background()); err != nil {
				bad = append(bad, ch.Name())
			}
		}
		if !reflect.DeepEqual(bad, c.bad) {
			t.Errorf("%s: failing checks %v, want %v", c.name, bad, c.bad)
		}
	}
}
