package robustness

import (
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/tests/v3/robustness/model"
	"go.etcd.io/etcd/tests/v3/robustness/validate"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func putEntry(t *testing.T, index, term uint64, key, value string) *raftpb.Entry {
	t.Helper()
	data, err := proto.Marshal(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(key), Value: []byte(value)}})
	if err != nil {
		t.Fatal(err)
	}
	return &raftpb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(term), Type: raftpb.EntryType_EntryNormal.Enum(), Data: data}
}

func TestMergeLogs(t *testing.T) {
	a := memberLog{dir: "a", commit: 3, entries: []*raftpb.Entry{putEntry(t, 1, 1, "k", "1"), putEntry(t, 2, 1, "k", "2"), putEntry(t, 3, 2, "k", "3")}}
	// b installed a snapshot at 2 and holds an uncommitted entry 4 of an
	// old term; c holds entry 4 of a newer term.
	b := memberLog{dir: "b", commit: 3, entries: []*raftpb.Entry{putEntry(t, 3, 2, "k", "3"), putEntry(t, 4, 2, "k", "old")}}
	c := memberLog{dir: "c", commit: 2, entries: []*raftpb.Entry{putEntry(t, 1, 1, "k", "1"), putEntry(t, 2, 1, "k", "2"), putEntry(t, 3, 2, "k", "3"), putEntry(t, 4, 3, "k", "new")}}
	got, err := mergeLogs([]memberLog{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[3].GetTerm() != 3 {
		t.Fatalf("merged %d entries, last term %d; want 4, term 3", len(got), got[len(got)-1].GetTerm())
	}

	// Two members that committed different entries at one index: a
	// safety violation the merge must report, not paper over.
	bad := memberLog{dir: "bad", commit: 3, entries: []*raftpb.Entry{putEntry(t, 1, 1, "k", "1"), putEntry(t, 2, 1, "k", "2"), putEntry(t, 3, 2, "k", "other")}}
	if _, err := mergeLogs([]memberLog{a, bad}); err == nil || !strings.Contains(err.Error(), "committed entry 3 differs") {
		t.Fatalf("conflicting committed entries: err = %v", err)
	}
	// An index no member holds: requests would be missing from the replay.
	gap := memberLog{dir: "gap", commit: 3, entries: []*raftpb.Entry{putEntry(t, 1, 1, "k", "1"), putEntry(t, 3, 2, "k", "3")}}
	if _, err := mergeLogs([]memberLog{gap}); err == nil || !strings.Contains(err.Error(), "no member holds raft entry 2") {
		t.Fatalf("gap: err = %v", err)
	}
}

func TestToModelRequest(t *testing.T) {
	data, _ := proto.Marshal(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("k"), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: 7}}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 5}}}},
		Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k")}}}},
	}})
	r, err := toModelRequest(data)
	if err != nil {
		t.Fatal(err)
	}
	if r.Type != model.Txn || r.Txn.Conditions[0].ExpectedRevision != 7 || r.Txn.OperationsOnSuccess[0].Put.LeaseID != 5 || r.Txn.OperationsOnFailure[0].Type != model.RangeOperation {
		t.Fatalf("txn decoded as %+v", r.Txn)
	}
	// Requests outside the model are refused rather than mis-replayed.
	data, _ = proto.Marshal(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("z")}})
	if _, err := toModelRequest(data); err == nil {
		t.Fatal("range delete accepted")
	}
	// Requests the model does not track are skipped.
	data, _ = proto.Marshal(&pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}})
	if r, err := toModelRequest(data); r != nil || err != nil {
		t.Fatalf("auth enable: %v, %v", r, err)
	}
}

// TestOnlySuccessPasses: Unknown (etcd's Result.Error lets it through) and
// Timeout never count as a pass.
func TestOnlySuccessPasses(t *testing.T) {
	ok := validate.Result{Status: validate.Success}
	all := validate.RobustnessResult{Assumptions: ok, Watch: ok, Serializable: ok}
	all.Linearization.Result = ok
	if err := checkAllSucceeded(all); err != nil {
		t.Fatalf("all Success: %v", err)
	}
	for _, st := range []validate.ResultStatus{validate.Unknown, validate.Timeout, validate.DeadlineExceeded, validate.Failure} {
		r := all
		r.Watch = validate.Result{Status: st}
		if checkAllSucceeded(r) == nil {
			t.Errorf("watch %q passed", st)
		}
		r = all
		r.Linearization.Result = validate.Result{Status: st}
		if checkAllSucceeded(r) == nil {
			t.Errorf("linearization %q passed", st)
		}
	}
}
