package txn

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/mvcc"
)

// Txn applies a Txn request as one write txn of w: compares (of every nested
// level, against the state before the txn) pick a path, the path's requests
// are checked (revisions, leases, ignore_* keys) and then executed, all
// writes at one revision. A txn that writes nothing does not bump the
// revision. An error other than the domain errors (ErrKeyNotFound,
// ErrLeaseNotFound, mvcc.ErrCompacted, mvcc.ErrFutureRev, returned before
// anything was staged) means the Writer is broken and must be dropped.
func (e *Executor) Txn(w *mvcc.Writer, r *pb.TxnRequest) (*pb.TxnResponse, []*mvccpb.Event, error) {
	ctx := context.Background()
	tw := w.Begin()
	path := compareToPath(ctx, tw, r)
	if _, err := e.checkTxn(ctx, tw, r, path); err != nil {
		tw.End()
		return nil, nil, err
	}
	resp, _ := newTxnResp(r, path)
	_, err := e.executeTxn(ctx, tw, w, tw, r, path, resp)
	resp.Header.Revision = tw.Rev()
	evs := tw.End()
	if err != nil {
		return nil, nil, err
	}
	if err := w.Err(); err != nil {
		return nil, nil, err
	}
	return resp, evs, nil
}

// TxnReadOnly serves a read-only Txn (IsTxnReadOnly) without Raft, on one
// pinned snapshot of the store.
func (e *Executor) TxnReadOnly(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if !IsTxnReadOnly(r) {
		return nil, fmt.Errorf("txn: TxnReadOnly on a txn that writes")
	}
	rt := e.store.Read()
	defer rt.End()
	path := compareToPath(ctx, rt, r)
	if _, err := e.checkTxn(ctx, rt, r, path); err != nil {
		return nil, err
	}
	resp, _ := newTxnResp(r, path)
	if _, err := e.executeTxn(ctx, rt, nil, nil, r, path, resp); err != nil {
		return nil, err
	}
	resp.Header.Revision = rt.Rev()
	return resp, nil
}

// compareToPath evaluates the compares of r and of every nested txn on the
// chosen branches, depth first, all against rv as it is now.
func compareToPath(ctx context.Context, rv readView, r *pb.TxnRequest) []bool {
	path := make([]bool, 1)
	ops := r.GetSuccess()
	if path[0] = applyCompares(ctx, rv, r.GetCompare()); !path[0] {
		ops = r.GetFailure()
	}
	for _, op := range ops {
		tv, ok := op.GetRequest().(*pb.RequestOp_RequestTxn)
		if !ok {
			continue // a nil nested txn is an empty one, here and below
		}
		path = append(path, compareToPath(ctx, rv, tv.RequestTxn)...)
	}
	return path
}

func applyCompares(ctx context.Context, rv readView, cmps []*pb.Compare) bool {
	for _, c := range cmps {
		if !applyCompare(ctx, rv, c) {
			return false
		}
	}
	return true
}

// applyCompare: every key in the range must pass; a missing key compares as
// a zero KeyValue, except for VALUE, which then fails.
func applyCompare(ctx context.Context, rv readView, c *pb.Compare) bool {
	if c == nil {
		return true
	}
	rr, err := rv.Range(ctx, c.Key, c.RangeEnd, mvcc.RangeOptions{})
	if err != nil {
		return false
	}
	if len(rr.KVs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false
		}
		return compareKV(c, &mvccpb.KeyValue{})
	}
	for _, kv := range rr.KVs {
		if !compareKV(c, kv) {
			return false
		}
	}
	return true
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var result int
	var rev int64
	switch c.Target {
	case pb.Compare_VALUE:
		var v []byte
		if tv, _ := c.TargetUnion.(*pb.Compare_Value); tv != nil {
			v = tv.Value
		}
		result = bytes.Compare(kv.Value, v)
	case pb.Compare_CREATE:
		if tv, _ := c.TargetUnion.(*pb.Compare_CreateRevision); tv != nil {
			rev = tv.CreateRevision
		}
		result = compareInt64(kv.CreateRevision, rev)
	case pb.Compare_MOD:
		if tv, _ := c.TargetUnion.(*pb.Compare_ModRevision); tv != nil {
			rev = tv.ModRevision
		}
		result = compareInt64(kv.ModRevision, rev)
	case pb.Compare_VERSION:
		if tv, _ := c.TargetUnion.(*pb.Compare_Version); tv != nil {
			rev = tv.Version
		}
		result = compareInt64(kv.Version, rev)
	case pb.Compare_LEASE:
		if tv, _ := c.TargetUnion.(*pb.Compare_Lease); tv != nil {
			rev = tv.Lease
		}
		result = compareInt64(kv.Lease, rev)
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true
}

// checkTxn checks the requests on the chosen path before anything runs, so a
// failing txn stages nothing: range revisions against the view, put leases
// and ignore_* keys.
func (e *Executor) checkTxn(ctx context.Context, rv readView, r *pb.TxnRequest, path []bool) (int, error) {
	txns := 0
	reqs := r.GetSuccess()
	if !path[0] {
		reqs = r.GetFailure()
	}
	for _, req := range reqs {
		var err error
		switch tv := req.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			err = checkRange(rv, tv.RequestRange)
		case *pb.RequestOp_RequestPut:
			if p := tv.RequestPut; p != nil {
				if err = e.checkLease(p); err == nil {
					_, err = prevForPut(ctx, rv, p)
				}
			}
		case *pb.RequestOp_RequestTxn:
			var n int
			n, err = e.checkTxn(ctx, rv, tv.RequestTxn, path[1:])
			txns += n + 1
			path = path[n+1:]
		}
		if err != nil {
			return 0, err
		}
	}
	return txns, nil
}

func checkRange(rv readView, r *pb.RangeRequest) error {
	switch rev := r.GetRevision(); {
	case rev == 0:
		return nil
	case rev > rv.Rev():
		return mvcc.ErrFutureRev
	case rev < rv.CompactRev():
		return mvcc.ErrCompacted
	}
	return nil
}

// newTxnResp builds the response skeleton of the chosen path.
func newTxnResp(r *pb.TxnRequest, path []bool) (*pb.TxnResponse, int) {
	reqs := r.GetSuccess()
	if !path[0] {
		reqs = r.GetFailure()
	}
	resps := make([]*pb.ResponseOp, len(reqs))
	resp := newTxnResponse()
	resp.Responses, resp.Succeeded = resps, path[0]
	txns := 0
	for i, req := range reqs {
		switch tv := req.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			resps[i] = responseOp(func(o *pb.ResponseOp, w *pb.ResponseOp_ResponseRange) { o.Response = w })
		case *pb.RequestOp_RequestPut:
			resps[i] = responseOp(func(o *pb.ResponseOp, w *pb.ResponseOp_ResponsePut) { o.Response = w })
		case *pb.RequestOp_RequestDeleteRange:
			resps[i] = responseOp(func(o *pb.ResponseOp, w *pb.ResponseOp_ResponseDeleteRange) { o.Response = w })
		case *pb.RequestOp_RequestTxn:
			sub, n := newTxnResp(tv.RequestTxn, path[1:])
			resps[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: sub}}
			path = path[1+n:]
			txns += n + 1
		default:
			resps[i] = &pb.ResponseOp{}
		}
	}
	return resp, txns
}

// executeTxn runs the chosen path. tw is nil for read-only txns. Nested
// txn responses carry no header revision, as in etcd.
func (e *Executor) executeTxn(ctx context.Context, rv readView, w *mvcc.Writer, tw *mvcc.TxnWrite, r *pb.TxnRequest, path []bool, tresp *pb.TxnResponse) (int, error) {
	reqs := r.GetSuccess()
	if !path[0] {
		reqs = r.GetFailure()
	}
	txns := 0
	for i, req := range reqs {
		respi := tresp.Responses[i].Response
		switch tv := req.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			resp, err := executeRange(ctx, rv, tv.RequestRange, true)
			if err != nil {
				return 0, fmt.Errorf("txn: range: %w", err)
			}
			respi.(*pb.ResponseOp_ResponseRange).ResponseRange = resp
		case *pb.RequestOp_RequestPut:
			p := tv.RequestPut
			if p == nil {
				p = &pb.PutRequest{}
			}
			prev, err := prevForPut(ctx, rv, p)
			if errors.Is(err, ErrKeyNotFound) {
				// checkTxn saw the key, but an earlier op of this txn deleted
				// it (a delete with range_end "\x00" escapes the duplicate
				// check). etcd panics here; we put an empty value without
				// lease, deterministically, instead.
				prev, err = nil, nil
			}
			if err != nil {
				return 0, fmt.Errorf("txn: put: %w", err)
			}
			resp, err := e.put(w, tw, p, prev)
			if err != nil {
				return 0, err
			}
			respi.(*pb.ResponseOp_ResponsePut).ResponsePut = resp
		case *pb.RequestOp_RequestDeleteRange:
			d := tv.RequestDeleteRange
			if d == nil {
				d = &pb.DeleteRangeRequest{}
			}
			resp, err := e.deleteRange(w, tw, d)
			if err != nil {
				return 0, err
			}
			respi.(*pb.ResponseOp_ResponseDeleteRange).ResponseDeleteRange = resp
		case *pb.RequestOp_RequestTxn:
			sub := respi.(*pb.ResponseOp_ResponseTxn).ResponseTxn
			n, err := e.executeTxn(ctx, rv, w, tw, tv.RequestTxn, path[1:], sub)
			if err != nil {
				return 0, err
			}
			txns += n + 1
			path = path[n+1:]
		}
	}
	return txns, nil
}
