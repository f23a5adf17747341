package txn

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

func TestCheckSimpleRequests(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"range empty key", CheckRangeRequest(&pb.RangeRequest{}), rpctypes.ErrGRPCEmptyKey},
		{"range bad order", CheckRangeRequest(&pb.RangeRequest{Key: []byte("a"), SortOrder: 9}), rpctypes.ErrGRPCInvalidSortOption},
		{"range bad target", CheckRangeRequest(&pb.RangeRequest{Key: []byte("a"), SortTarget: 9}), rpctypes.ErrGRPCInvalidSortOption},
		{"range ok", CheckRangeRequest(&pb.RangeRequest{Key: []byte("a"), SortTarget: pb.RangeRequest_VALUE}), nil},
		{"range nil", CheckRangeRequest(nil), rpctypes.ErrGRPCEmptyKey},
		{"put empty key", CheckPutRequest(&pb.PutRequest{Value: []byte("v")}), rpctypes.ErrGRPCEmptyKey},
		{"put ignore value with value", CheckPutRequest(&pb.PutRequest{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true}), rpctypes.ErrGRPCValueProvided},
		{"put ignore lease with lease", CheckPutRequest(&pb.PutRequest{Key: []byte("a"), Lease: 1, IgnoreLease: true}), rpctypes.ErrGRPCLeaseProvided},
		{"put ok", CheckPutRequest(&pb.PutRequest{Key: []byte("a"), IgnoreLease: true, IgnoreValue: true}), nil},
		{"delete empty key", CheckDeleteRequest(&pb.DeleteRangeRequest{RangeEnd: []byte("z")}), rpctypes.ErrGRPCEmptyKey},
		{"delete ok", CheckDeleteRequest(&pb.DeleteRangeRequest{Key: []byte("a")}), nil},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v want %v", tc.name, tc.err, tc.want)
		}
	}
}

func puts(keys ...string) []*pb.RequestOp {
	var ops []*pb.RequestOp
	for _, k := range keys {
		ops = append(ops, opPut(k, "v"))
	}
	return ops
}

func TestCheckTxnRequest(t *testing.T) {
	many := make([]*pb.RequestOp, 129)
	for i := range many {
		many[i] = opGet("a", "")
	}
	tests := []struct {
		name string
		req  *pb.TxnRequest
		want error
	}{
		{"empty", &pb.TxnRequest{}, nil},
		{"too many ops", &pb.TxnRequest{Success: many}, rpctypes.ErrGRPCTooManyOps},
		{"128 ops ok", &pb.TxnRequest{Success: many[:128]}, nil},
		{"nested budget", &pb.TxnRequest{Success: append(append([]*pb.RequestOp(nil), many[:100]...), opTxn(&pb.TxnRequest{Success: many[:28]}))}, rpctypes.ErrGRPCTooManyOps},
		{"nested budget ok", &pb.TxnRequest{Success: append(append([]*pb.RequestOp(nil), many[:100]...), opTxn(&pb.TxnRequest{Success: many[:27]}))}, nil},
		{"compare empty key", &pb.TxnRequest{Compare: []*pb.Compare{{}}}, rpctypes.ErrGRPCEmptyKey},
		{"empty op", &pb.TxnRequest{Success: []*pb.RequestOp{{}}}, rpctypes.ErrGRPCKeyNotFound},
		{"bad put in failure", &pb.TxnRequest{Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{}}}}}, rpctypes.ErrGRPCEmptyKey},
		{"bad nested range", &pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), SortOrder: 7}}}}})}}, rpctypes.ErrGRPCInvalidSortOption},
		// duplicate keys
		{"put twice", &pb.TxnRequest{Success: puts("a", "a")}, rpctypes.ErrGRPCDuplicateKey},
		{"put in success and failure", &pb.TxnRequest{Success: puts("a"), Failure: puts("a")}, nil},
		{"put and point delete", &pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "v"), opDel("a", "")}}, rpctypes.ErrGRPCDuplicateKey},
		{"put inside delete range", &pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "c"), opPut("b", "v")}}, rpctypes.ErrGRPCDuplicateKey},
		{"put at delete range end", &pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "c"), opPut("c", "v")}}, nil},
		{"delete from-key never conflicts (etcd)", &pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "\x00"), opPut("b", "v")}}, nil},
		{"inverted delete range never conflicts", &pb.TxnRequest{Success: []*pb.RequestOp{opDel("c", "a"), opPut("b", "v")}}, nil},
		{"deletes may overlap", &pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "c"), opDel("b", "d")}}, nil},
		{"ranges never conflict", &pb.TxnRequest{Success: []*pb.RequestOp{opGet("a", ""), opPut("a", "v")}}, nil},
		{"nested put vs outer put", &pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "v"), opTxn(&pb.TxnRequest{Success: puts("a")})}}, rpctypes.ErrGRPCDuplicateKey},
		{"nested put vs outer delete", &pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "b"), opTxn(&pb.TxnRequest{Failure: puts("a")})}}, rpctypes.ErrGRPCDuplicateKey},
		{"nested delete vs outer put", &pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "v"), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "")}})}}, rpctypes.ErrGRPCDuplicateKey},
		{"nested then/else same key", &pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Success: puts("a"), Failure: puts("a")})}}, nil},
		{"two nested txns same key", &pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Success: puts("a")}), opTxn(&pb.TxnRequest{Failure: puts("a")})}}, rpctypes.ErrGRPCDuplicateKey},
		{"later nested put vs earlier nested delete", &pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "z")}}), opTxn(&pb.TxnRequest{Success: puts("b")})}}, rpctypes.ErrGRPCDuplicateKey},
		{"earlier nested put vs later nested delete (etcd allows)", &pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Success: puts("b")}), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "z")}})}}, nil},
		{"deep nesting", &pb.TxnRequest{Success: []*pb.RequestOp{opPut("k", "v"), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Success: puts("k")})}})}}, rpctypes.ErrGRPCDuplicateKey},
		{"nil nested txn", &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{}}}}, nil},
	}
	for _, tc := range tests {
		if err := CheckTxnRequest(tc.req, DefaultMaxTxnOps); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v want %v", tc.name, err, tc.want)
		}
	}
}

// FuzzCheckTxnRequest: validation and classification never panic on any
// decodable request, and a request that passes can be executed.
func FuzzCheckTxnRequest(f *testing.F) {
	seeds := []*pb.TxnRequest{
		{Success: puts("a", "b")},
		{Compare: []*pb.Compare{cmp("a", pb.Compare_VALUE, pb.Compare_EQUAL, "x")}, Success: []*pb.RequestOp{opDel("a", "c"), opTxn(&pb.TxnRequest{Success: puts("d")})}, Failure: []*pb.RequestOp{opGet("a", "\x00")}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r pb.TxnRequest
		if err := proto.Unmarshal(data, &r); err != nil {
			return
		}
		err := CheckTxnRequest(&r, DefaultMaxTxnOps)
		_ = IsTxnReadOnly(&r)
		_ = IsTxnSerializable(&r)
		for _, op := range append(r.Success, r.Failure...) {
			_ = CheckRangeStreamRequest(op.GetRequestRange())
		}
		if err != nil {
			return
		}
		e := newEnv(t)
		_, _, _ = e.txn(&r)
		if IsTxnReadOnly(&r) {
			_, _ = e.ex.TxnReadOnly(bg, &r)
		}
	})
}

// TestDistinctFlatPutsAgreesWithCheckIntervals: whenever the allocation-free
// check accepts a branch, the full interval check accepts it too; and it
// accepts the common flat branches without duplicates.
func TestDistinctFlatPutsAgreesWithCheckIntervals(t *testing.T) {
	keys := []string{"a", "b", "c"}
	op := func(kind, k int) *pb.RequestOp {
		key := []byte(keys[k])
		switch kind {
		case 0:
			return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key}}}
		case 1:
			return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: key}}}
		case 2:
			return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: key}}}
		default:
			return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: []*pb.RequestOp{
				{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key}}}}}}}
		}
	}
	accepted := 0
	// Every branch of up to 3 ops over 4 kinds and 3 keys.
	var branches [][]*pb.RequestOp
	var gen func(prefix []*pb.RequestOp)
	gen = func(prefix []*pb.RequestOp) {
		branches = append(branches, prefix)
		if len(prefix) == 3 {
			return
		}
		for kind := range 4 {
			for k := range keys {
				gen(append(append([]*pb.RequestOp(nil), prefix...), op(kind, k)))
			}
		}
	}
	gen(nil)
	for _, b := range branches {
		_, _, err := checkIntervals(b)
		if distinctFlatPuts(b) {
			accepted++
			if err != nil {
				t.Fatalf("distinctFlatPuts accepted %v, checkIntervals: %v", b, err)
			}
		}
		wantFlat := err == nil
		for _, o := range b {
			switch o.GetRequest().(type) {
			case *pb.RequestOp_RequestTxn, *pb.RequestOp_RequestDeleteRange:
				wantFlat = false
			}
		}
		if wantFlat && !distinctFlatPuts(b) {
			t.Fatalf("distinctFlatPuts refused the flat branch %v", b)
		}
	}
	if accepted == 0 {
		t.Fatal("no branch took the fast path")
	}
	put := op(0, 0)
	rng := op(1, 1)
	if n := testing.AllocsPerRun(100, func() {
		if err := CheckTxnRequest(&pb.TxnRequest{Success: []*pb.RequestOp{put}, Failure: []*pb.RequestOp{rng}}, DefaultMaxTxnOps); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("CheckTxnRequest of a put-or-get txn: %v allocations", n)
	}
}
