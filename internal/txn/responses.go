package txn

import pb "go.etcd.io/etcd/api/v3/etcdserverpb"

// Every response carries a header; allocating the two together saves an
// allocation per request (and per operation of a txn), which the write
// path's allocation profile counts in the thousands per second. The header
// pointer points into the same object, which the GC keeps alive as a whole.

type putResponse struct {
	resp pb.PutResponse
	hdr  pb.ResponseHeader
}

func newPutResponse() *pb.PutResponse {
	p := new(putResponse)
	p.resp.Header = &p.hdr
	return &p.resp
}

type deleteResponse struct {
	resp pb.DeleteRangeResponse
	hdr  pb.ResponseHeader
}

func newDeleteResponse(rev int64) *pb.DeleteRangeResponse {
	p := new(deleteResponse)
	p.hdr.Revision = rev
	p.resp.Header = &p.hdr
	return &p.resp
}

type rangeResponse struct {
	resp pb.RangeResponse
	hdr  pb.ResponseHeader
}

func newRangeResponse(rev int64) *pb.RangeResponse {
	p := new(rangeResponse)
	p.hdr.Revision = rev
	p.resp.Header = &p.hdr
	return &p.resp
}

type txnResponse struct {
	resp pb.TxnResponse
	hdr  pb.ResponseHeader
}

func newTxnResponse() *pb.TxnResponse {
	p := new(txnResponse)
	p.resp.Header = &p.hdr
	return &p.resp
}
