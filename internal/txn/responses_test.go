package txn

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestResponsesOneAllocation: each response comes with its header, in one
// allocation, with the revision asked for.
func TestResponsesOneAllocation(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		if r := newRangeResponse(7); r.Header.Revision != 7 {
			t.Fatalf("revision %d", r.Header.Revision)
		}
	}); n != 1 {
		t.Fatalf("newRangeResponse: %v allocations, want 1", n)
	}
	if r := newDeleteResponse(3); r.Header == nil || r.Header.Revision != 3 {
		t.Fatalf("delete response header %v", r.Header)
	}
	if r := newPutResponse(); r.Header == nil || r.Header.Revision != 0 {
		t.Fatalf("put response header %v", r.Header)
	}
	if r := newTxnResponse(); r.Header == nil {
		t.Fatal("txn response without header")
	}
}

// TestResponseOpOneAllocation: a txn's per-op response and its oneof wrapper
// come in one allocation, and the wrapper is the op's response.
func TestResponseOpOneAllocation(t *testing.T) {
	var op *pb.ResponseOp
	if n := testing.AllocsPerRun(100, func() {
		op = responseOp(func(o *pb.ResponseOp, w *pb.ResponseOp_ResponsePut) { o.Response = w })
	}); n != 1 {
		t.Fatalf("responseOp: %v allocations, want 1", n)
	}
	w, ok := op.Response.(*pb.ResponseOp_ResponsePut)
	if !ok {
		t.Fatalf("response %T", op.Response)
	}
	w.ResponsePut = newPutResponse()
	if op.GetResponsePut() == nil {
		t.Fatal("the wrapper is not the op's response")
	}
}
