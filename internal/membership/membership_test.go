package membership

import (
	"testing"

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
	if err := s.StageClusterID(b, 99); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	s.Put(m)
	s.SetClusterID(99)
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
