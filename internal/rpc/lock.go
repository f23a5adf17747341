package rpc

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
)

// lockServer is etcd's v3lock service. Like etcd, it is a client of this
// very server: a lock is a concurrency.Mutex on a session whose lease the
// caller owns, so its semantics are exactly clientv3's.
type lockServer struct {
	v3lockpb.UnimplementedLockServer
	c *clientv3.Client
}

// NewLockServer returns the v3lock service, using c (a client dialled to
// this server) for its reads and writes.
func NewLockServer(c *clientv3.Client) v3lockpb.LockServer {
	return &lockServer{c: c}
}

// Lock waits until the caller holds the lock name under its lease and
// returns the ownership key; the key lives as long as the lock is held.
func (s *lockServer) Lock(ctx context.Context, req *v3lockpb.LockRequest) (*v3lockpb.LockResponse, error) {
	sess, err := concurrency.NewSession(s.c,
		concurrency.WithLease(clientv3.LeaseID(req.Lease)),
		concurrency.WithContext(ctx),
	)
	if err != nil {
		return nil, err
	}
	// The caller keeps the lease alive, not this server.
	sess.Orphan()
	m := concurrency.NewMutex(sess, string(req.Name))
	if err := m.Lock(ctx); err != nil {
		return nil, err
	}
	return &v3lockpb.LockResponse{Header: m.Header(), Key: []byte(m.Key())}, nil
}

// Unlock deletes the ownership key.
func (s *lockServer) Unlock(ctx context.Context, req *v3lockpb.UnlockRequest) (*v3lockpb.UnlockResponse, error) {
	resp, err := s.c.Delete(ctx, string(req.Key))
	if err != nil {
		return nil, err
	}
	return &v3lockpb.UnlockResponse{Header: resp.Header}, nil
}
