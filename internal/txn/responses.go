package txn

import pb "go.etcd.io/etcd/api/v3/etcdserverpb"

// Every response carries a header; allocating the two together saves an
// allocation per request (and per operation of a txn), which the write
// path's allocation profile counts in the thousands per second. The header
// pointer points into the same object, which the GC keeps alive as a whole.

// withHeader returns a new R whose header (set by link) has revision rev,
// both in one allocation.
func withHeader[R any](rev int64, link func(*R, *pb.ResponseHeader)) *R {
	p := new(struct {
		resp R
		hdr  pb.ResponseHeader
	})
	p.hdr.Revision = rev
	link(&p.resp, &p.hdr)
	return &p.resp
}

func newPutResponse() *pb.PutResponse {
	return withHeader(0, func(r *pb.PutResponse, h *pb.ResponseHeader) { r.Header = h })
}

func newDeleteResponse(rev int64) *pb.DeleteRangeResponse {
	return withHeader(rev, func(r *pb.DeleteRangeResponse, h *pb.ResponseHeader) { r.Header = h })
}

func newRangeResponse(rev int64) *pb.RangeResponse {
	return withHeader(rev, func(r *pb.RangeResponse, h *pb.ResponseHeader) { r.Header = h })
}

func newTxnResponse() *pb.TxnResponse {
	return withHeader(0, func(r *pb.TxnResponse, h *pb.ResponseHeader) { r.Header = h })
}

// responseOp returns a new ResponseOp whose oneof wrapper W (set by link)
// shares its allocation, as withHeader does for headers.
func responseOp[W any](link func(*pb.ResponseOp, *W)) *pb.ResponseOp {
	p := new(struct {
		op pb.ResponseOp
		w  W
	})
	link(&p.op, &p.w)
	return &p.op
}
