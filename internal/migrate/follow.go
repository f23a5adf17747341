package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ErrCompactedPast: etcd compacted its history past the revision metastore
// holds, so the events in between are lost; restore a newer snapshot.
var ErrCompactedPast = errors.New("migrate: etcd compacted past metastore's revision: restore a newer snapshot and follow again")

// ErrDiverged: an etcd revision did not become the same metastore revision.
var ErrDiverged = errors.New("migrate: metastore diverged from etcd")

// Follower applies a live etcd's revisions to a metastore in migration mode.
// Run it once; it is not safe for concurrent use.
type Follower struct {
	// From is a client of the etcd cluster, To of the metastore cluster.
	From, To *clientv3.Client
	// Token is the migration token the metastore members were restored with.
	Token string
	// LeaseSync is how often leases are brought in line and the cut-over is
	// checked for; default one second.
	LeaseSync time.Duration
	// Logf, when set, reports progress.
	Logf func(format string, args ...any)

	wctx  context.Context
	kv    pb.KVClient
	lc    pb.LeaseClient
	cur   int64
	alive map[int64]context.CancelFunc // metastore leases kept alive
}

func (f *Follower) logf(format string, args ...any) {
	if f.Logf != nil {
		f.Logf(format, args...)
	}
}

// Run follows etcd from metastore's revision + 1 until metastore is cut over
// (nil), ctx ends, or the two would diverge (an error; nothing of the
// revision at fault is applied).
func (f *Follower) Run(ctx context.Context) error {
	if f.LeaseSync <= 0 {
		f.LeaseSync = time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.wctx = metadata.AppendToOutgoingContext(ctx, HeaderToken, f.Token)
	f.kv = pb.NewKVClient(f.To.ActiveConnection())
	f.lc = pb.NewLeaseClient(f.To.ActiveConnection())
	f.alive = map[int64]context.CancelFunc{}
	r, err := f.To.Get(ctx, "\x00")
	if err != nil {
		return fmt.Errorf("migrate: read metastore's revision: %w", err)
	}
	f.cur = r.Header.Revision
	f.logf("following etcd from revision %d", f.cur+1)
	if err := f.syncLeases(ctx); err != nil {
		return err
	}
	wch := f.From.Watch(clientv3.WithRequireLeader(ctx), "", clientv3.WithFromKey(), clientv3.WithRev(f.cur+1),
		clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	tick := time.NewTicker(f.LeaseSync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			migrating, _, err := MemberState(ctx, f.To)
			if err != nil {
				return err
			}
			if !migrating {
				f.logf("metastore was cut over at revision %d; stopping", f.cur)
				return nil
			}
			if err := f.syncLeases(ctx); err != nil {
				return err
			}
		case wr, ok := <-wch:
			if !ok {
				return fmt.Errorf("migrate: etcd watch ended: %v", ctx.Err())
			}
			if wr.CompactRevision != 0 {
				return fmt.Errorf("%w (etcd compacted at %d, metastore at %d)", ErrCompactedPast, wr.CompactRevision, f.cur)
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("migrate: etcd watch: %w", err)
			}
			if err := f.applyEvents(ctx, wr.Events); err != nil {
				return err
			}
		}
	}
}

// Applied is the last etcd revision applied.
func (f *Follower) Applied() int64 { return f.cur }

// applyEvents applies events, in order, one metastore Txn per etcd revision.
func (f *Follower) applyEvents(ctx context.Context, evs []*clientv3.Event) error {
	for len(evs) > 0 {
		rev := evs[0].Kv.ModRevision
		n := 1
		for n < len(evs) && evs[n].Kv.ModRevision == rev {
			n++
		}
		if err := f.applyRevision(ctx, rev, evs[:n]); err != nil {
			return err
		}
		evs = evs[n:]
	}
	return nil
}

func (f *Follower) applyRevision(ctx context.Context, rev int64, evs []*clientv3.Event) error {
	if rev <= f.cur {
		return nil // replayed after a watch restart
	}
	if rev != f.cur+1 {
		return fmt.Errorf("%w: etcd revision %d follows metastore's %d", ErrDiverged, rev, f.cur)
	}
	ops := make([]*pb.RequestOp, 0, len(evs))
	for _, ev := range evs {
		switch ev.Type {
		case mvccpb.Event_PUT:
			if l := ev.Kv.Lease; l != 0 {
				if err := f.ensureLease(ctx, l); err != nil {
					return err
				}
			}
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
				Key: ev.Kv.Key, Value: ev.Kv.Value, Lease: ev.Kv.Lease}}})
		case mvccpb.Event_DELETE:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: ev.Kv.Key}}})
		}
	}
	req := &pb.TxnRequest{Success: ops}
	for attempt := 1; ; attempt++ {
		resp, err := f.kv.Txn(f.wctx, req)
		got := int64(0)
		if err == nil {
			got = resp.Header.Revision
		} else {
			// The outcome of a failed call (a leader change, a timeout) is
			// unknown: only the follower writes, so metastore's revision
			// tells whether the txn was applied.
			r, rerr := f.To.Get(ctx, "\x00")
			if rerr != nil || r.Header.Revision == f.cur {
				if attempt >= maxApplyAttempts || ctx.Err() != nil || !transient(err) {
					return fmt.Errorf("migrate: apply etcd revision %d (%d changes): %w", rev, len(ops), err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
				}
				continue
			}
			got = r.Header.Revision
		}
		if got != rev {
			return fmt.Errorf("%w: etcd revision %d became metastore revision %d", ErrDiverged, rev, got)
		}
		f.cur = rev
		return nil
	}
}

// transient reports whether a failed call may succeed when repeated; a
// refused request (too many operations, no permission) never will.
func transient(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.PermissionDenied, codes.NotFound, codes.OutOfRange:
		return false
	}
	return true
}

// maxApplyAttempts bounds the retries of one revision whose txn failed
// without being applied.
const maxApplyAttempts = 10

// ensureLease grants on metastore, with etcd's ID and TTL, a lease a put
// uses, before the put.
func (f *Follower) ensureLease(ctx context.Context, id int64) error {
	if _, ok := f.alive[id]; ok {
		return nil
	}
	ttl := int64(60) // a lease etcd already revoked: its keys' deletes follow
	if t, err := f.From.TimeToLive(ctx, clientv3.LeaseID(id)); err == nil && t.GrantedTTL > 0 {
		ttl = t.GrantedTTL
	}
	if _, err := f.lc.LeaseGrant(f.wctx, &pb.LeaseGrantRequest{ID: id, TTL: ttl}); err != nil && !isLeaseExists(err) {
		return fmt.Errorf("migrate: grant lease %x on metastore: %w", id, err)
	}
	f.keepAlive(ctx, id)
	return nil
}

func isLeaseExists(err error) bool { return containsMsg(err, "lease already exists") }

// keepAlive keeps a metastore lease from expiring while following: an
// expiry there would add a revision etcd does not have. etcd decides when a
// lease ends; its keys' deletes come through the watch.
func (f *Follower) keepAlive(ctx context.Context, id int64) {
	if _, ok := f.alive[id]; ok {
		return
	}
	kctx, cancel := context.WithCancel(ctx)
	ch, err := f.To.KeepAlive(kctx, clientv3.LeaseID(id))
	if err != nil {
		cancel()
		return
	}
	f.alive[id] = cancel
	go func() {
		for range ch { // drained until the lease or kctx ends
		}
	}()
}

// syncLeases brings metastore's leases in line with etcd's: grants those
// etcd has, revokes those etcd no longer has once no key uses them (so the
// revoke writes no revision), and keeps the others alive.
func (f *Follower) syncLeases(ctx context.Context) error {
	el, err := f.From.Leases(ctx)
	if err != nil {
		return fmt.Errorf("migrate: list etcd leases: %w", err)
	}
	ml, err := f.To.Leases(ctx)
	if err != nil {
		return fmt.Errorf("migrate: list metastore leases: %w", err)
	}
	inEtcd := map[int64]bool{}
	for _, l := range el.Leases {
		inEtcd[int64(l.ID)] = true
		if err := f.ensureLease(ctx, int64(l.ID)); err != nil {
			return err
		}
	}
	for _, l := range ml.Leases {
		id := int64(l.ID)
		if inEtcd[id] {
			continue
		}
		t, err := f.To.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
		if err != nil {
			return fmt.Errorf("migrate: metastore lease %x: %w", id, err)
		}
		if len(t.Keys) > 0 {
			f.keepAlive(ctx, id) // its keys' deletes have not arrived yet
			continue
		}
		if _, err := f.lc.LeaseRevoke(f.wctx, &pb.LeaseRevokeRequest{ID: id}); err != nil && !containsMsg(err, "requested lease not found") {
			return fmt.Errorf("migrate: revoke lease %x on metastore: %w", id, err)
		}
		if cancel, ok := f.alive[id]; ok {
			cancel()
			delete(f.alive, id)
		}
	}
	r, err := f.To.Get(ctx, "\x00")
	if err != nil {
		return fmt.Errorf("migrate: read metastore's revision: %w", err)
	}
	if r.Header.Revision != f.cur {
		return fmt.Errorf("%w: metastore is at revision %d, etcd's last applied is %d (did a lease expire on metastore?)", ErrDiverged, r.Header.Revision, f.cur)
	}
	return nil
}
