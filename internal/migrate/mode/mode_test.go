package mode

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/enginetest"
	"github.com/metastore/metastore/internal/storage/memory"
)

// The end request survives the trip through the Raft log (marshal with a
// header, as the backend proposes it, then unmarshal at apply), and no
// other request reads as one.
func TestEndRequestThroughEncoding(t *testing.T) {
	r := EndRequest("tok")
	r.Header = &pb.RequestHeader{ID: 42}
	data, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got pb.InternalRaftRequest
	if err := proto.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if tok, ok := IsEnd(&got); !ok || tok != "tok" || got.GetHeader().GetID() != 42 {
		t.Fatalf("decoded end request: %q, %v, header %v", tok, ok, got.GetHeader())
	}
	for _, other := range []*pb.InternalRaftRequest{
		{Put: &pb.PutRequest{Key: []byte("k")}},
		{Header: &pb.RequestHeader{ID: 1}, Txn: &pb.TxnRequest{}},
		{},
	} {
		data, err := proto.Marshal(other)
		if err != nil {
			t.Fatal(err)
		}
		var dec pb.InternalRaftRequest
		if err := proto.Unmarshal(data, &dec); err != nil {
			t.Fatal(err)
		}
		if _, ok := IsEnd(&dec); ok {
			t.Fatalf("%v reads as an end request", other)
		}
	}
}

func TestLoadAndStageEnd(t *testing.T) {
	eng := memory.New()
	t.Cleanup(func() { _ = eng.Close() })
	commit := func(f func(b storage.Batch) error) { t.Helper(); enginetest.Commit(t, eng, f) }
	if m, known, err := Load(eng); m != nil || known || err != nil {
		t.Fatalf("empty engine: %v, %v, %v", m, known, err)
	}
	if err := Stage(eng.NewBatch(), Marker{}); err == nil {
		t.Fatal("marker without a token staged")
	}
	commit(func(b storage.Batch) error {
		if err := b.Set(storage.KeyAppliedIndex, make([]byte, 16)); err != nil {
			return err
		}
		return Stage(b, Marker{Token: "tok", Revision: 9})
	})
	if m, known, err := Load(eng); m == nil || *m != (Marker{Token: "tok", Revision: 9}) || !known || err != nil {
		t.Fatalf("migrating: %v, %v, %v", m, known, err)
	}
	var failure error
	commit(func(b storage.Batch) (err error) { failure, err = StageEnd(b, eng, "other"); return err })
	if failure != ErrBadToken {
		t.Fatalf("end with another token: %v", failure)
	}
	commit(func(b storage.Batch) (err error) { failure, err = StageEnd(b, eng, "tok"); return err })
	if m, known, err := Load(eng); failure != nil || m != nil || !known || err != nil {
		t.Fatalf("after the end (%v): %v, %v, %v", failure, m, known, err)
	}
}
