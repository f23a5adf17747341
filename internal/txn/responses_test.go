package txn

import "testing"

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
