package membership

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage/memory"
)

func TestIDsAreStableAndOrderIndependent(t *testing.T) {
	a := ComputeMemberID([]string{"http://10.0.0.1:2380", "http://10.0.0.2:2380"}, "tok")
	b := ComputeMemberID([]string{"http://10.0.0.2:2380", "http://10.0.0.1:2380"}, "tok")
	if a != b || a == 0 {
		t.Fatalf("member ID depends on URL order: %x vs %x", a, b)
	}
	if ComputeMemberID([]string{"http://10.0.0.1:2380", "http://10.0.0.2:2380"}, "other") == a {
		t.Fatal("the cluster token must change the member ID")
	}
	if ComputeClusterID([]uint64{1, 2, 3}) != ComputeClusterID([]uint64{3, 1, 2}) {
		t.Fatal("cluster ID depends on member order")
	}
}

func TestMembersPersist(t *testing.T) {
	eng := memory.New()
	s, err := Load(eng)
	if err != nil {
		t.Fatal(err)
	}
	m := &Member{ID: 42, Name: "m1", PeerURLs: []string{"http://127.0.0.1:2380"}, ClientURLs: []string{"http://127.0.0.1:2379"}}
	b := eng.NewBatch()
	if err := StagePut(b, m); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	s.Put(m)
	if err := s.RecordIdentity(eng, 42, 99); err != nil {
		t.Fatal(err)
	}
	if id, ok, err := ReadLocalID(eng); err != nil || !ok || id != 42 {
		t.Fatalf("ReadLocalID = %x %v %v, want 42", id, ok, err)
	}
	re, err := Load(eng)
	if err != nil {
		t.Fatal(err)
	}
	got := re.Member(42)
	if got == nil || got.Name != "m1" || got.ClientURLs[0] != "http://127.0.0.1:2379" || re.ClusterID() != 99 {
		t.Fatalf("after reload: %+v cluster %x", got, re.ClusterID())
	}
	b = eng.NewBatch()
	if err := StageRemove(b, 42); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if re, _ := Load(eng); len(re.Members()) != 0 {
		t.Fatal("removed member came back")
	}
}

func addCC(typ raftpb.ConfChangeType, m Member) *raftpb.ConfChange {
	return &raftpb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(m.ID), Context: (&ConfChangeContext{Member: m}).Encode()}
}

// Validate refuses what etcd's ValidateConfigurationChange refuses, with
// the same errors, and the readiness checks count started voters as etcd.
func TestValidateConfChange(t *testing.T) {
	eng := memory.New()
	s, err := Load(eng)
	if err != nil {
		t.Fatal(err)
	}
	s.Put(&Member{ID: 1, Name: "a", PeerURLs: []string{"http://a:2380"}})
	s.Put(&Member{ID: 2, Name: "b", PeerURLs: []string{"http://b:2380"}})
	s.Put(&Member{ID: 3, PeerURLs: []string{"http://c:2380"}}) // added, never started
	add, learner := raftpb.ConfChangeType_ConfChangeAddNode, raftpb.ConfChangeType_ConfChangeAddLearnerNode
	for _, tc := range []struct {
		name string
		cc   *raftpb.ConfChange
		want error
	}{
		{"add", addCC(add, Member{ID: 4, PeerURLs: []string{"http://d:2380"}}), nil},
		{"add existing ID", addCC(add, Member{ID: 2, PeerURLs: []string{"http://d:2380"}}), ErrIDExists},
		{"add taken URL", addCC(add, Member{ID: 4, PeerURLs: []string{"http://b:2380"}}), ErrPeerURLExists},
		{"add learner", addCC(learner, Member{ID: 4, PeerURLs: []string{"http://d:2380"}}), nil},
		{"remove unknown", &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(9)}, ErrIDNotFound},
		{"update to a taken URL", &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeUpdateNode.Enum(), NodeId: proto.Uint64(1),
			Context: (&ConfChangeContext{Member: Member{ID: 1, PeerURLs: []string{"http://b:2380"}}}).Encode()}, ErrPeerURLExists},
		{"update own URL", &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeUpdateNode.Enum(), NodeId: proto.Uint64(1),
			Context: (&ConfChangeContext{Member: Member{ID: 1, PeerURLs: []string{"http://a:2380"}}}).Encode()}, nil},
		{"promote a voter", &raftpb.ConfChange{Type: add.Enum(), NodeId: proto.Uint64(1),
			Context: (&ConfChangeContext{Member: Member{ID: 1}, IsPromote: true}).Encode()}, ErrMemberNotLearner},
		{"promote unknown", &raftpb.ConfChange{Type: add.Enum(), NodeId: proto.Uint64(9),
			Context: (&ConfChangeContext{Member: Member{ID: 9}, IsPromote: true}).Encode()}, ErrIDNotFound},
	} {
		if err := s.Validate(tc.cc, 1); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Two of three voters started: adding a fourth voter would need three.
	if s.ReadyToAddVoter() {
		t.Error("ReadyToAddVoter with 2 of 3 voters started")
	}
	if !s.ReadyToRemoveVoter(3) || s.ReadyToRemoveVoter(1) {
		t.Error("ReadyToRemoveVoter: removing the unstarted member leaves 2/2 started, removing a started one 1/2")
	}
	s.Put(&Member{ID: 5, PeerURLs: []string{"http://e:2380"}, IsLearner: true})
	if err := s.Validate(addCC(learner, Member{ID: 6, PeerURLs: []string{"http://f:2380"}}), 1); !errors.Is(err, ErrTooManyLearners) {
		t.Errorf("second learner: %v", err)
	}
	// A removed ID never comes back, and that survives a reload.
	b := eng.NewBatch()
	if err := StageRemove(b, 3); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	s.Remove(3)
	if err := s.Reload(eng); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(addCC(add, Member{ID: 3, PeerURLs: []string{"http://c:2380"}}), 1); !errors.Is(err, ErrIDRemoved) {
		t.Errorf("re-adding a removed ID: %v", err)
	}
}

func TestParsePeerURLs(t *testing.T) {
	got, err := ParsePeerURLs([]string{"http://b:2380", " https://a:2380 "})
	if err != nil || len(got) != 2 || got[0] != "http://b:2380" || got[1] != "https://a:2380" {
		t.Fatalf("ParsePeerURLs = %v, %v", got, err)
	}
	for _, bad := range [][]string{nil, {"http://a"}, {"ftp://a:1"}, {"http://a:1/path"}, {"a:1"}} {
		if _, err := ParsePeerURLs(bad); !errors.Is(err, ErrBadURLs) {
			t.Errorf("ParsePeerURLs(%q) = %v, want ErrBadURLs", bad, err)
		}
	}
	now := time.Unix(1700000000, 0)
	if NewMemberID([]string{"http://a:1"}, now) == NewMemberID([]string{"http://a:1"}, now.Add(time.Second)) {
		t.Error("a member re-added later must get a new ID")
	}
}
