package txn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/storage"
)

var (
	// ErrKeyNotFound: ignore_value/ignore_lease on a key that does not exist.
	ErrKeyNotFound = errors.New("etcdserver: key not found")
	// ErrLeaseNotFound: a put names a lease that does not exist.
	ErrLeaseNotFound = errors.New("lease not found")
)

// LeaseIndex is what the executor needs from the lease package. A nil
// LeaseIndex means no lease exists.
type LeaseIndex interface {
	Exists(id int64) bool
	// Attach and Detach stage the key<->lease link in b, the batch of the
	// write that changes it.
	Attach(b storage.Batch, id int64, key []byte) error
	Detach(b storage.Batch, id int64, key []byte) error
}

// DefaultMaxRequestBytes is etcd's --max-request-bytes default; RangeStream
// sizes its chunks towards it.
const DefaultMaxRequestBytes = 1572864

// Option tunes an Executor.
type Option func(*Executor)

// WithMaxRequestBytes sets the chunk size RangeStream aims at.
func WithMaxRequestBytes(n int) Option {
	return func(e *Executor) {
		if n > 0 {
			e.maxRequestBytes = n
		}
	}
}

// Executor runs KV requests against a Store.
type Executor struct {
	store           *mvcc.Store
	leases          LeaseIndex
	lg              *zap.Logger
	maxRequestBytes int
}

// New returns an Executor.
func New(store *mvcc.Store, leases LeaseIndex, lg *zap.Logger, opts ...Option) *Executor {
	if lg == nil {
		lg = zap.NewNop()
	}
	e := &Executor{store: store, leases: leases, lg: lg, maxRequestBytes: DefaultMaxRequestBytes}
	for _, o := range opts {
		o(e)
	}
	return e
}

// readView is what ranges and compares read from: an mvcc.ReadTxn, or an
// mvcc.TxnWrite (which sees its own writes).
type readView interface {
	Range(ctx context.Context, key, end []byte, ro mvcc.RangeOptions) (*mvcc.RangeResult, error)
	Rev() int64
	CompactRev() int64
}

// storeView reads the latest state without pinning a snapshot (single reads).
type storeView struct{ s *mvcc.Store }

func (v storeView) Range(ctx context.Context, key, end []byte, ro mvcc.RangeOptions) (*mvcc.RangeResult, error) {
	return v.s.Range(ctx, key, end, ro)
}

// Range serves a Range request (serializable or not: the caller decides
// whether a ReadIndex is needed first).
func (e *Executor) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	return executeRange(ctx, storeView{e.store}, r, true)
}

type ranger interface {
	Range(ctx context.Context, key, end []byte, ro mvcc.RangeOptions) (*mvcc.RangeResult, error)
}

func isDefaultOrdering(t pb.RangeRequest_SortTarget, o pb.RangeRequest_SortOrder) bool {
	// the store returns keys in ascending order already
	return o == pb.RangeRequest_NONE || (t == pb.RangeRequest_KEY && o == pb.RangeRequest_ASCEND)
}

func hasRevisionFilters(r *pb.RangeRequest) bool {
	return r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
}

// rangeLimit pushes the limit down (plus one, to learn "more") only when
// nothing has to be sorted or filtered after reading.
func rangeLimit(r *pb.RangeRequest) int64 {
	limit := r.Limit
	if !isDefaultOrdering(r.SortTarget, r.SortOrder) || hasRevisionFilters(r) {
		limit = 0
	}
	if limit > 0 && limit < math.MaxInt64 {
		limit++
	}
	return limit
}

func executeRange(ctx context.Context, rv ranger, r *pb.RangeRequest, withTotalCount bool) (*pb.RangeResponse, error) {
	if r == nil {
		r = &pb.RangeRequest{}
	}
	// etcd answers keys_only (unless sorting by value) from its index, which
	// has no values and no leases.
	fastKeysOnly := r.KeysOnly && r.SortTarget != pb.RangeRequest_VALUE
	rr, err := rv.Range(ctx, r.Key, r.RangeEnd, mvcc.RangeOptions{
		Limit:    rangeLimit(r),
		Rev:      r.Revision,
		Count:    r.CountOnly,
		KeysOnly: fastKeysOnly,
		NoTotal:  !withTotalCount,
	})
	if err != nil {
		return nil, err
	}
	kvs := rr.KVs
	if r.MaxModRevision != 0 {
		kvs = prune(kvs, func(kv *mvccpb.KeyValue) bool { return kv.ModRevision > r.MaxModRevision })
	}
	if r.MinModRevision != 0 {
		kvs = prune(kvs, func(kv *mvccpb.KeyValue) bool { return kv.ModRevision < r.MinModRevision })
	}
	if r.MaxCreateRevision != 0 {
		kvs = prune(kvs, func(kv *mvccpb.KeyValue) bool { return kv.CreateRevision > r.MaxCreateRevision })
	}
	if r.MinCreateRevision != 0 {
		kvs = prune(kvs, func(kv *mvccpb.KeyValue) bool { return kv.CreateRevision < r.MinCreateRevision })
	}
	sortKVs(kvs, r)
	resp := newRangeResponse(rr.Rev)
	resp.Count = int64(rr.Count)
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs = kvs[:r.Limit]
		resp.More = true
	}
	for _, kv := range kvs {
		if r.KeysOnly {
			kv.Value = nil
		}
		if fastKeysOnly {
			kv.Lease = 0
		}
	}
	resp.Kvs = kvs
	return resp, nil
}

func prune(kvs []*mvccpb.KeyValue, drop func(*mvccpb.KeyValue) bool) []*mvccpb.KeyValue {
	j := 0
	for _, kv := range kvs {
		if !drop(kv) {
			kvs[j] = kv
			j++
		}
	}
	return kvs[:j]
}

// kvSorter mirrors etcd's sorters (same comparisons, same sort.Sort), so that
// ties come out in the same order.
type kvSorter struct {
	kvs  []*mvccpb.KeyValue
	less func(a, b *mvccpb.KeyValue) bool
}

func (s kvSorter) Len() int           { return len(s.kvs) }
func (s kvSorter) Swap(i, j int)      { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }
func (s kvSorter) Less(i, j int) bool { return s.less(s.kvs[i], s.kvs[j]) }

func sortKVs(kvs []*mvccpb.KeyValue, r *pb.RangeRequest) {
	order := r.SortOrder
	if r.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	}
	if isDefaultOrdering(r.SortTarget, order) {
		return
	}
	var less func(a, b *mvccpb.KeyValue) bool
	switch r.SortTarget {
	case pb.RangeRequest_KEY:
		less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 }
	case pb.RangeRequest_VERSION:
		less = func(a, b *mvccpb.KeyValue) bool { return a.Version-b.Version < 0 }
	case pb.RangeRequest_CREATE:
		less = func(a, b *mvccpb.KeyValue) bool { return a.CreateRevision-b.CreateRevision < 0 }
	case pb.RangeRequest_MOD:
		less = func(a, b *mvccpb.KeyValue) bool { return a.ModRevision-b.ModRevision < 0 }
	case pb.RangeRequest_VALUE:
		less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 }
	default:
		return // rejected by CheckRangeRequest
	}
	s := kvSorter{kvs: kvs, less: less}
	switch order {
	case pb.RangeRequest_ASCEND:
		sort.Sort(s)
	case pb.RangeRequest_DESCEND:
		sort.Sort(sort.Reverse(s))
	}
}

// initialStreamChunk is the first RangeStream chunk's key count (etcd's).
const initialStreamChunk = 10

// RangeStream serves etcd 3.7's RangeStream: the range in chunks at one
// pinned revision; kvs are disjoint and in order; header, more and count
// only on the last chunk. The caller validates with CheckRangeStreamRequest
// and wraps each response in a RangeStreamResponse.
func (e *Executor) RangeStream(ctx context.Context, req *pb.RangeRequest, send func(*pb.RangeResponse) error) error {
	r := proto.Clone(req).(*pb.RangeRequest)
	rv := storeView{e.store}
	if r.CountOnly {
		resp, err := executeRange(ctx, rv, r, false)
		if err != nil {
			return err
		}
		return send(&pb.RangeResponse{Header: &pb.ResponseHeader{Revision: resp.Header.Revision}, Count: resp.Count})
	}
	total := r.Limit
	if total == 0 {
		total = math.MaxInt64
	}
	r.Limit = min(int64(initialStreamChunk), total)
	var count, headerRev int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		resp, err := executeRange(ctx, rv, r, false)
		if err != nil {
			return err
		}
		if headerRev == 0 {
			// pin the revision for the rest of the stream
			headerRev = resp.Header.Revision
			if r.Revision == 0 {
				r.Revision = headerRev
			}
		}
		count += int64(len(resp.Kvs))
		var nextKey []byte
		if resp.More {
			nextKey = append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0)
		}
		out := &pb.RangeResponse{Kvs: resp.Kvs}
		done := !resp.More || count == total
		if done {
			out.Header = &pb.ResponseHeader{Revision: headerRev}
			out.More = resp.More
			out.Count = count
			if resp.More {
				rest, err := executeRange(ctx, rv, &pb.RangeRequest{Key: nextKey, RangeEnd: r.RangeEnd, Revision: r.Revision, CountOnly: true}, false)
				if err != nil {
					return err
				}
				out.Count += rest.Count
			}
		}
		if err := send(out); err != nil {
			return err
		}
		if done {
			return nil
		}
		r.Key = nextKey
		r.Limit = min(adjustChunkLimit(r.Limit, proto.Size(resp), e.maxRequestBytes), total-count)
	}
}

// adjustChunkLimit doubles or halves the chunk size when the last chunk was
// far from the target size (etcd's rule).
func adjustChunkLimit(last int64, lastSize, target int) int64 {
	switch {
	case lastSize < target/2:
		last *= 2
	case lastSize > target*2:
		last /= 2
	}
	if last == 0 {
		last = 1
	}
	return last
}

func (e *Executor) checkLease(p *pb.PutRequest) error {
	if p.Lease != 0 && (e.leases == nil || !e.leases.Exists(p.Lease)) {
		return ErrLeaseNotFound
	}
	return nil
}

// prevForPut reads the key's current version when the put needs it.
func prevForPut(ctx context.Context, rv ranger, p *pb.PutRequest) (*mvccpb.KeyValue, error) {
	if !p.IgnoreValue && !p.IgnoreLease && !p.PrevKv {
		return nil, nil
	}
	rr, err := rv.Range(ctx, p.Key, nil, mvcc.RangeOptions{})
	if err != nil {
		return nil, err
	}
	var prev *mvccpb.KeyValue
	if len(rr.KVs) > 0 {
		prev = rr.KVs[0]
	}
	if (p.IgnoreValue || p.IgnoreLease) && prev == nil {
		return nil, ErrKeyNotFound
	}
	return prev, nil
}

// Put applies a Put request as one write txn of w.
func (e *Executor) Put(w *mvcc.Writer, r *pb.PutRequest) (*pb.PutResponse, []*mvccpb.Event, error) {
	if err := e.checkLease(r); err != nil {
		return nil, nil, err
	}
	tw := w.Begin()
	prev, err := prevForPut(context.Background(), tw, r)
	if err != nil {
		tw.End()
		return nil, nil, err
	}
	resp, err := e.put(w, tw, r, prev)
	evs := tw.End()
	if err != nil {
		return nil, nil, err
	}
	return resp, evs, nil
}

func (e *Executor) put(w *mvcc.Writer, tw *mvcc.TxnWrite, p *pb.PutRequest, prev *mvccpb.KeyValue) (*pb.PutResponse, error) {
	val, lease := p.Value, p.Lease
	if p.IgnoreValue {
		val = prev.GetValue() // nil-safe: see executeTxn
	}
	if p.IgnoreLease {
		lease = prev.GetLease()
	}
	resp := newPutResponse()
	if p.PrevKv && prev != nil {
		resp.PrevKv = prev
	}
	old := tw.Put(p.Key, val, lease)
	resp.Header.Revision = tw.Rev()
	var oldLease int64
	if old != nil {
		oldLease = old.Lease
	}
	if oldLease != lease && e.leases != nil {
		if oldLease != 0 {
			e.detach(w.Batch(), oldLease, p.Key)
		}
		if lease != 0 {
			if err := e.leases.Attach(w.Batch(), lease, p.Key); err != nil {
				return nil, fmt.Errorf("txn: attach lease %x: %w", lease, err)
			}
		}
	}
	return resp, w.Err()
}

// detach ignores errors, like etcd (the key may outlive a revoked lease
// record only until the revoke's own delete).
func (e *Executor) detach(b storage.Batch, id int64, key []byte) {
	if err := e.leases.Detach(b, id, key); err != nil {
		e.lg.Error("failed to detach lease from key", zap.Int64("lease", id), zap.Binary("key", key), zap.Error(err))
	}
}

// DeleteRange applies a DeleteRange request as one write txn of w.
func (e *Executor) DeleteRange(w *mvcc.Writer, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, []*mvccpb.Event, error) {
	tw := w.Begin()
	resp, err := e.deleteRange(w, tw, r)
	evs := tw.End()
	if err != nil {
		return nil, nil, err
	}
	return resp, evs, nil
}

func (e *Executor) deleteRange(w *mvcc.Writer, tw *mvcc.TxnWrite, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	deleted := tw.DeleteRange(r.Key, r.RangeEnd)
	resp := newDeleteResponse(tw.Rev())
	resp.Deleted = int64(len(deleted))
	if r.PrevKv {
		resp.PrevKvs = deleted
	}
	if e.leases != nil {
		for _, kv := range deleted {
			if kv.Lease != 0 {
				e.detach(w.Batch(), kv.Lease, kv.Key)
			}
		}
	}
	return resp, w.Err()
}
