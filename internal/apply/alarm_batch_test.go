package apply

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/alarm"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/mvcc/mvcctest"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage/memory"
	"github.com/metastore/metastore/internal/txn"
)

// A NOSPACE alarm raised, a put and the alarm cleared: the put is refused
// and the alarm ends cleared whether the three entries are applied one
// batch each (live) or in one batch (a member replaying the log), or the
// replaying member would hold a key the others refused.
func TestAlarmBatchedLikeUnbatched(t *testing.T) {
	reqs := []*pb.InternalRaftRequest{
		{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}},
		{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}},
		{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}},
		{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 2, Alarm: pb.AlarmType_NOSPACE}},
	}
	var ents []*raftpb.Entry
	for i, r := range reqs {
		d, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		ents = append(ents, &raftpb.Entry{Index: proto.Uint64(uint64(i + 1)), Term: proto.Uint64(1), Type: raftpb.EntryType_EntryNormal.Enum(), Data: d})
	}
	run := func(batches [][]*raftpb.Entry) (mem, disk []*pb.AlarmMember, rev int64) {
		eng := memory.New()
		log, _ := raftlog.Open(eng)
		store := mvcctest.Open(t, eng, nil)
		members, _ := membership.Load(eng)
		alarms, err := alarm.Load(eng)
		if err != nil {
			t.Fatal(err)
		}
		a, err := New(Config{Engine: eng, Store: store, Executor: txn.New(store, nil, nil), RaftLog: log, Members: members,
			Alarms: alarms, Conf: &fakeConf{}, Wait: NewWait()})
		if err != nil {
			t.Fatal(err)
		}
		applyInBatches(t, a, batches)
		reloaded, err := alarm.Load(eng)
		if err != nil {
			t.Fatal(err)
		}
		return alarms.Get(pb.AlarmType_NONE), reloaded.Get(pb.AlarmType_NONE), store.Rev()
	}
	for name, batches := range map[string][][]*raftpb.Entry{"one entry per batch": oneEntryPerBatch(ents), "one batch": {ents}} {
		mem, disk, rev := run(batches)
		if rev != 1 {
			t.Errorf("%s: revision %d, want 1 (the put refused under NOSPACE)", name, rev)
		}
		for where, got := range map[string][]*pb.AlarmMember{"in memory": mem, "on disk": disk} {
			if len(got) != 1 || got[0].MemberID != 2 || got[0].Alarm != pb.AlarmType_NOSPACE {
				t.Errorf("%s: alarms %s %v, want member 2's NOSPACE only", name, where, got)
			}
		}
	}
}
