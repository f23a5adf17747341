package txn

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultMaxTxnOps is etcd's --max-txn-ops default.
const DefaultMaxTxnOps = 128

// CheckRangeRequest validates a Range request as etcd's gRPC layer does.
func CheckRangeRequest(r *pb.RangeRequest) error {
	if len(r.GetKey()) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.GetSortOrder())]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.GetSortTarget())]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

// CheckRangeStreamRequest validates a RangeStream request: a Range request
// without custom sort order or revision filters (Unimplemented otherwise).
func CheckRangeStreamRequest(r *pb.RangeRequest) error {
	if err := CheckRangeRequest(r); err != nil {
		return err
	}
	if !isDefaultOrdering(r.SortTarget, r.SortOrder) {
		return status.Errorf(codes.Unimplemented, "RangeStream does not support custom sort orders")
	}
	if hasRevisionFilters(r) {
		return status.Errorf(codes.Unimplemented, "RangeStream does not support revision filters")
	}
	return nil
}

// CheckPutRequest validates a Put request.
func CheckPutRequest(r *pb.PutRequest) error {
	if len(r.GetKey()) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if r.GetIgnoreValue() && len(r.GetValue()) != 0 {
		return rpctypes.ErrGRPCValueProvided
	}
	if r.GetIgnoreLease() && r.GetLease() != 0 {
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

// CheckDeleteRequest validates a DeleteRange request.
func CheckDeleteRequest(r *pb.DeleteRangeRequest) error {
	if len(r.GetKey()) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	return nil
}

// CheckTxnRequest validates a Txn request: op counts (each nested level gets
// what its parent left of maxTxnOps), keys, sub-requests, then the rule that
// no key is written twice (put/put or put inside a delete range) on one path.
func CheckTxnRequest(r *pb.TxnRequest, maxTxnOps int) error {
	if err := checkTxnRequest(r, maxTxnOps); err != nil {
		return err
	}
	// after the cheap checks, as etcd, to avoid quadratic work on bad input
	for _, branch := range [][]*pb.RequestOp{r.GetSuccess(), r.GetFailure()} {
		if distinctFlatPuts(branch) {
			continue
		}
		if _, _, err := checkIntervals(branch); err != nil {
			return err
		}
	}
	return nil
}

// maxFlatOps bounds the branches distinctFlatPuts compares pairwise.
const maxFlatOps = 8

// distinctFlatPuts reports, without allocating, that a small branch with
// neither deletes nor nested txns puts no key twice: what checkIntervals
// would accept, for the common txn (a few puts and ranges) that it spends
// a map and a delete set on. false means "not known": checkIntervals
// decides.
func distinctFlatPuts(reqs []*pb.RequestOp) bool {
	if len(reqs) > maxFlatOps {
		return false
	}
	for i, req := range reqs {
		switch tv := req.GetRequest().(type) {
		case *pb.RequestOp_RequestTxn, *pb.RequestOp_RequestDeleteRange:
			return false
		case *pb.RequestOp_RequestPut:
			k := tv.RequestPut.GetKey()
			for _, prev := range reqs[:i] {
				if p, ok := prev.GetRequest().(*pb.RequestOp_RequestPut); ok && p.RequestPut != nil && tv.RequestPut != nil && string(p.RequestPut.GetKey()) == string(k) {
					return false
				}
			}
		}
	}
	return true
}

func checkTxnRequest(r *pb.TxnRequest, maxTxnOps int) error {
	opc := len(r.GetCompare())
	if opc < len(r.GetSuccess()) {
		opc = len(r.GetSuccess())
	}
	if opc < len(r.GetFailure()) {
		opc = len(r.GetFailure())
	}
	if opc > maxTxnOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.GetCompare() {
		if len(c.GetKey()) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	for _, u := range r.GetSuccess() {
		if err := checkRequestOp(u, maxTxnOps-opc); err != nil {
			return err
		}
	}
	for _, u := range r.GetFailure() {
		if err := checkRequestOp(u, maxTxnOps-opc); err != nil {
			return err
		}
	}
	return nil
}

func checkRequestOp(u *pb.RequestOp, maxTxnOps int) error {
	switch uv := u.GetRequest().(type) {
	case *pb.RequestOp_RequestRange:
		return CheckRangeRequest(uv.RequestRange)
	case *pb.RequestOp_RequestPut:
		return CheckPutRequest(uv.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		return CheckDeleteRequest(uv.RequestDeleteRange)
	case *pb.RequestOp_RequestTxn:
		return checkTxnRequest(uv.RequestTxn, maxTxnOps)
	default: // empty op
		return rpctypes.ErrGRPCKeyNotFound
	}
}

// delSet is the set of delete ranges seen so far on a txn path. Point
// deletes are a map; ranges a list (few in practice).
type delSet struct {
	points map[string]struct{}
	ranges [][2]string // [begin, end)
}

func (d *delSet) add(key, end []byte) {
	if len(end) == 0 {
		if d.points == nil {
			d.points = make(map[string]struct{})
		}
		d.points[string(key)] = struct{}{}
		return
	}
	d.ranges = append(d.ranges, [2]string{string(key), string(end)})
}

func (d *delSet) union(o *delSet) {
	for k := range o.points {
		if d.points == nil {
			d.points = make(map[string]struct{})
		}
		d.points[k] = struct{}{}
	}
	d.ranges = append(d.ranges, o.ranges...)
}

// covers reports whether a delete covers key k. As in etcd's interval tree,
// a range is [begin, end) by byte order, so an end of "\x00" (meaning "to
// the end of the key space" elsewhere) or any end <= begin covers nothing.
func (d *delSet) covers(k string) bool {
	if _, ok := d.points[k]; ok {
		return true
	}
	for _, r := range d.ranges {
		if r[0] <= k && k < r[1] {
			return true
		}
	}
	return false
}

// checkIntervals returns ErrGRPCDuplicateKey when a path through reqs puts a
// key twice or puts a key that a delete on the path covers, exactly as
// etcd's v3rpc checkIntervals: children's puts are checked against this
// level's deletes and earlier children's deletes; this level's puts against
// all of them; then and else branches of one child may put the same key.
func checkIntervals(reqs []*pb.RequestOp) (map[string]struct{}, *delSet, error) {
	dels := &delSet{}
	for _, req := range reqs {
		tv, ok := req.GetRequest().(*pb.RequestOp_RequestDeleteRange)
		if !ok || tv.RequestDeleteRange == nil {
			continue
		}
		dels.add(tv.RequestDeleteRange.Key, tv.RequestDeleteRange.RangeEnd)
	}
	puts := make(map[string]struct{})
	for _, req := range reqs {
		tv, ok := req.GetRequest().(*pb.RequestOp_RequestTxn)
		if !ok {
			continue
		}
		putsThen, delsThen, err := checkIntervals(tv.RequestTxn.GetSuccess())
		if err != nil {
			return nil, dels, err
		}
		putsElse, delsElse, err := checkIntervals(tv.RequestTxn.GetFailure())
		if err != nil {
			return nil, dels, err
		}
		for k := range putsThen {
			if _, ok := puts[k]; ok {
				return nil, dels, rpctypes.ErrGRPCDuplicateKey
			}
			if dels.covers(k) {
				return nil, dels, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range putsElse {
			if _, ok := puts[k]; ok {
				if _, isSafe := putsThen[k]; !isSafe {
					return nil, dels, rpctypes.ErrGRPCDuplicateKey
				}
			}
			if dels.covers(k) {
				return nil, dels, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels.union(delsThen)
		dels.union(delsElse)
	}
	for _, req := range reqs {
		tv, ok := req.GetRequest().(*pb.RequestOp_RequestPut)
		if !ok || tv.RequestPut == nil {
			continue
		}
		k := string(tv.RequestPut.Key)
		if _, ok := puts[k]; ok {
			return nil, dels, rpctypes.ErrGRPCDuplicateKey
		}
		if dels.covers(k) {
			return nil, dels, rpctypes.ErrGRPCDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}

// IsTxnReadOnly reports whether every op of both branches is a Range (a
// nested txn counts as a write, as in etcd).
func IsTxnReadOnly(r *pb.TxnRequest) bool {
	for _, u := range r.GetSuccess() {
		if u.GetRequestRange() == nil {
			return false
		}
	}
	for _, u := range r.GetFailure() {
		if u.GetRequestRange() == nil {
			return false
		}
	}
	return true
}

// IsTxnSerializable reports whether every op is a serializable Range.
func IsTxnSerializable(r *pb.TxnRequest) bool {
	for _, u := range r.GetSuccess() {
		if rr := u.GetRequestRange(); rr == nil || !rr.Serializable {
			return false
		}
	}
	for _, u := range r.GetFailure() {
		if rr := u.GetRequestRange(); rr == nil || !rr.Serializable {
			return false
		}
	}
	return true
}
