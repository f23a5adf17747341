package status

import (
	"context"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/rpc"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/version"
)

// Raft is the member's raft node.
type Raft interface {
	Leader() uint64
	Term() uint64
}

// Members is the replicated member list.
type Members interface {
	ClusterID() uint64
	Member(id uint64) *membership.Member
	// IsLearner is asked on every request (the learner gate): unlike
	// Member it copies nothing.
	IsLearner(id uint64) bool
}

// Store is the MVCC store.
type Store interface {
	Rev() int64
}

// Alarms is the replicated alarm set.
type Alarms interface {
	Get(typ pb.AlarmType) []*pb.AlarmMember
}

// Engine reports the storage engine's size.
type Engine interface {
	Usage() storage.Usage
}

// RaftLog holds the persisted HardState, whose commit index Status reports.
type RaftLog interface {
	HardState() *raftpb.HardState
}

// Applier reports the applied index.
type Applier interface {
	AppliedIndex() uint64
}

// Reader serves the health check's one-key read.
type Reader interface {
	Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error)
}

// Config names the components a member's answers are read from.
type Config struct {
	Self    uint64
	Raft    Raft
	Members Members
	Store   Store
	Alarms  Alarms
	Engine  Engine
	RaftLog RaftLog
	Applier Applier
	Reader  Reader
	// QuotaBytes is the effective --quota-backend-bytes.
	QuotaBytes int64
}

// Header answers the fields of every response header (rpc.HeaderSource).
type Header struct{ c *Config }

// Probe answers the HTTP health endpoints (httpapi.Probe).
type Probe struct{ c *Config }

// Reporter answers Maintenance Status for this member.
type Reporter struct{ c *Config }

// New returns the three views of one member.
func New(c Config) (Header, Probe, Reporter) {
	return Header{&c}, Probe{&c}, Reporter{&c}
}

// ClusterID implements rpc.HeaderSource.
func (h Header) ClusterID() uint64 { return h.c.Members.ClusterID() }

// MemberID implements rpc.HeaderSource.
func (h Header) MemberID() uint64 { return h.c.Self }

// Term implements rpc.HeaderSource.
func (h Header) Term() uint64 { return h.c.Raft.Term() }

// Rev implements rpc.HeaderSource.
func (h Header) Rev() int64 { return h.c.Store.Rev() }

// HasLeader implements httpapi.Probe.
func (p Probe) HasLeader() bool { return p.c.Raft.Leader() != 0 }

// Alarms implements httpapi.Probe: the names of the active alarms.
func (p Probe) Alarms() []string {
	var out []string
	for _, a := range p.c.Alarms.Get(pb.AlarmType_NONE) {
		out = append(out, a.Alarm.String())
	}
	return out
}

// IsLearner implements httpapi.Probe (and is the learner gate's question).
func (p Probe) IsLearner() bool { return isLearner(p.c) }

func isLearner(c *Config) bool { return c.Members.IsLearner(c.Self) }

// Read implements httpapi.Probe: the one-key read etcd's health check
// does, as root when auth is enabled (as etcd's).
func (p Probe) Read(ctx context.Context, serializable bool) error {
	_, err := p.c.Reader.Range(auth.WithRoot(ctx), &pb.RangeRequest{Key: []byte("health"), Limit: 1, Serializable: serializable})
	return err
}

// Status is etcd's Maintenance Status of this member: what the member
// knows locally, with "etcdserver: no leader" and each active alarm (in
// etcd's format) among the errors.
func (r Reporter) Status(context.Context) (rpc.MemberStatus, error) {
	c := r.c
	u := c.Engine.Usage()
	st := rpc.MemberStatus{
		Version:          version.EtcdAPIVersion,
		StorageVersion:   version.StorageVersion,
		DBSize:           u.SizeBytes,
		DBSizeInUse:      u.LiveBytes,
		DBSizeQuota:      c.QuotaBytes,
		Leader:           c.Raft.Leader(),
		RaftIndex:        c.RaftLog.HardState().GetCommit(),
		RaftTerm:         c.Raft.Term(),
		RaftAppliedIndex: c.Applier.AppliedIndex(),
		IsLearner:        isLearner(c),
	}
	if st.Leader == 0 {
		st.Errors = append(st.Errors, "etcdserver: no leader")
	}
	for _, a := range c.Alarms.Get(pb.AlarmType_NONE) {
		st.Errors = append(st.Errors, fmt.Sprintf("memberID:%d alarm:%s ", a.MemberID, a.Alarm))
	}
	return st, nil
}
