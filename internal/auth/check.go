package auth

import (
	"context"
	"math"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// LeaseKeys returns the keys attached to a lease.
type LeaseKeys func(id int64) ([][]byte, error)

// CheckPut is etcd's check of a put: WRITE on the key, WRITE on the keys of
// its lease, READ for prev_kv.
func (p Perms) CheckPut(ai *AuthInfo, r *pb.PutRequest, lk LeaseKeys) error {
	if err := p.IsPutPermitted(ai, r.Key); err != nil {
		return err
	}
	if err := p.CheckLeaseKeys(ai, r.Lease, lk, true); err != nil {
		return err
	}
	if r.PrevKv {
		return p.IsRangePermitted(ai, r.Key, nil)
	}
	return nil
}

// CheckDelete is WRITE on the range, plus READ for prev_kv.
func (p Perms) CheckDelete(ai *AuthInfo, r *pb.DeleteRangeRequest) error {
	if err := p.IsDeleteRangePermitted(ai, r.Key, r.RangeEnd); err != nil {
		return err
	}
	if r.PrevKv {
		return p.IsRangePermitted(ai, r.Key, r.RangeEnd)
	}
	return nil
}

// CheckTxn checks READ for every compare and each operation of both
// branches, nested transactions included.
func (p Perms) CheckTxn(ai *AuthInfo, t *pb.TxnRequest, lk LeaseKeys) error {
	for _, c := range t.Compare {
		if err := p.IsRangePermitted(ai, c.Key, c.RangeEnd); err != nil {
			return err
		}
	}
	for _, ops := range [][]*pb.RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			var err error
			switch {
			case op.GetRequestRange() != nil:
				rr := op.GetRequestRange()
				err = p.IsRangePermitted(ai, rr.Key, rr.RangeEnd)
			case op.GetRequestPut() != nil:
				err = p.CheckPut(ai, op.GetRequestPut(), lk)
			case op.GetRequestDeleteRange() != nil:
				err = p.CheckDelete(ai, op.GetRequestDeleteRange())
			case op.GetRequestTxn() != nil:
				err = p.CheckTxn(ai, op.GetRequestTxn(), lk)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckLeaseKeys requires WRITE (or READ when write is false) on every key
// attached to lease id; root needs nothing.
func (p Perms) CheckLeaseKeys(ai *AuthInfo, id int64, lk LeaseKeys, write bool) error {
	if id == 0 || lk == nil || !p.st.enabled {
		return nil
	}
	if p.IsAdminPermitted(ai) == nil {
		return nil
	}
	keys, err := lk(id)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if write {
			err = p.IsPutPermitted(ai, k)
		} else {
			err = p.IsRangePermitted(ai, k, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// WithRoot marks ctx as the server's own request (health check), which
// runs as root whatever the auth revision, like etcd's WithRoot.
func WithRoot(ctx context.Context) context.Context {
	return NewContext(ctx, &AuthInfo{Username: rootUser, Revision: math.MaxUint64}, nil)
}

type ctxKey struct{}

type ctxInfo struct {
	ai  *AuthInfo
	err error
}

// NewContext records who the request runs as, or why its token is bad.
func NewContext(ctx context.Context, ai *AuthInfo, err error) context.Context {
	return context.WithValue(ctx, ctxKey{}, ctxInfo{ai, err})
}

// FromContext returns what NewContext recorded; nil, nil when nothing
// (no token, or auth disabled when the request arrived).
func FromContext(ctx context.Context) (*AuthInfo, error) {
	ci, _ := ctx.Value(ctxKey{}).(ctxInfo)
	return ci.ai, ci.err
}
