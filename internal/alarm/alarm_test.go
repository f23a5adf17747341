package alarm

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

func stage(t *testing.T, eng storage.Engine, s *Store, r *pb.AlarmRequest) *pb.AlarmResponse {
	t.Helper()
	b := eng.NewBatch()
	defer b.Close()
	resp, after, err := s.Stage(b, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if after != nil {
		after()
	}
	return resp
}

func TestActivateDeactivatePersist(t *testing.T) {
	eng := memory.New()
	s, err := Load(eng)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(true); err != nil {
		t.Fatalf("no alarms: %v", err)
	}
	nospace := &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 7, Alarm: pb.AlarmType_NOSPACE}
	if resp := stage(t, eng, s, nospace); len(resp.Alarms) != 1 {
		t.Fatalf("first activate answers %v, want the new alarm", resp.Alarms)
	}
	if resp := stage(t, eng, s, nospace); len(resp.Alarms) != 0 {
		t.Fatalf("second activate answers %v, want nothing (already active)", resp.Alarms)
	}
	if err := s.Check(true); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("write under NOSPACE: %v", err)
	}
	if err := s.Check(false); err != nil {
		t.Fatalf("delete under NOSPACE must pass: %v", err)
	}
	// Survives a reload, as after a restart.
	s2, err := Load(eng)
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.Get(pb.AlarmType_NONE); len(got) != 1 || got[0].MemberID != 7 || got[0].Alarm != pb.AlarmType_NOSPACE {
		t.Fatalf("alarms after reload = %v", got)
	}
	stage(t, eng, s2, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 7, Alarm: pb.AlarmType_CORRUPT})
	if err := s2.Check(false); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("any KV request under CORRUPT: %v", err)
	}
	if resp := stage(t, eng, s2, &pb.AlarmRequest{Action: pb.AlarmRequest_GET}); len(resp.Alarms) != 2 {
		t.Fatalf("GET = %v", resp.Alarms)
	}
	for _, a := range []pb.AlarmType{pb.AlarmType_NOSPACE, pb.AlarmType_CORRUPT} {
		stage(t, eng, s2, &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 7, Alarm: a})
	}
	if err := s2.Check(true); err != nil {
		t.Fatalf("after disarm: %v", err)
	}
	if s3, _ := Load(eng); len(s3.Get(pb.AlarmType_NONE)) != 0 {
		t.Fatal("disarmed alarms came back after reload")
	}
}

// A staged change is visible at once, to the next Stage and to Check in
// the same batch: a member replaying the log applies many entries in one
// batch and must decide each as the members that applied them one batch
// each (a batch that is not committed stops the member: apply.Applier.Run).
func TestStageVisibleWithinBatch(t *testing.T) {
	eng := memory.New()
	s, _ := Load(eng)
	b := eng.NewBatch()
	defer b.Close()
	raise := &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}
	if _, _, err := s.Stage(b, raise); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(true); err == nil {
		t.Fatal("a write after the staged NOSPACE passes Check")
	}
	if resp, _, err := s.Stage(b, raise); err != nil || len(resp.Alarms) != 0 {
		t.Fatalf("raising it again in the same batch: %v %v, want no alarm newly raised", resp, err)
	}
	disarm := &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}
	if resp, _, err := s.Stage(b, disarm); err != nil || len(resp.Alarms) != 1 {
		t.Fatalf("clearing it in the same batch: %v %v, want the cleared alarm", resp, err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	if s.Active(pb.AlarmType_NOSPACE) {
		t.Fatal("NOSPACE active after raise and clear")
	}
	if s2, _ := Load(eng); s2.Active(pb.AlarmType_NOSPACE) {
		t.Fatal("NOSPACE on disk after raise and clear")
	}
}
