package rpc

import (
	"context"
	"errors"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	epb "go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
)

// ErrMissingLeaderKey is etcd's answer to Proclaim or Resign without a
// leader key.
var ErrMissingLeaderKey = errors.New(`"leader" field must be provided`)

// electionServer is etcd's v3election service, built like etcd's on a
// client of this server and clientv3's concurrency.Election.
type electionServer struct {
	epb.UnimplementedElectionServer
	c *clientv3.Client
}

// NewElectionServer returns the v3election service, using c (a client
// dialled to this server).
func NewElectionServer(c *clientv3.Client) epb.ElectionServer {
	return &electionServer{c: c}
}

// session wraps the caller's lease without keeping it alive: the caller
// does that. Lease -1 (reads) never grants one.
func (s *electionServer) session(ctx context.Context, lease int64) (*concurrency.Session, error) {
	sess, err := concurrency.NewSession(s.c,
		concurrency.WithLease(clientv3.LeaseID(lease)),
		concurrency.WithContext(ctx),
	)
	if err != nil {
		return nil, err
	}
	sess.Orphan()
	return sess, nil
}

// Campaign waits until the caller leads election name, then returns its
// leader key.
func (s *electionServer) Campaign(ctx context.Context, req *epb.CampaignRequest) (*epb.CampaignResponse, error) {
	sess, err := s.session(ctx, req.Lease)
	if err != nil {
		return nil, err
	}
	e := concurrency.NewElection(sess, string(req.Name))
	if err := e.Campaign(ctx, string(req.Value)); err != nil {
		return nil, err
	}
	return &epb.CampaignResponse{
		Header: e.Header(),
		Leader: &epb.LeaderKey{Name: req.Name, Key: []byte(e.Key()), Rev: e.Rev(), Lease: int64(sess.Lease())},
	}, nil
}

// resume rebuilds the election a LeaderKey names, on its lease's session.
func (s *electionServer) resume(ctx context.Context, l *epb.LeaderKey) (*concurrency.Election, error) {
	if l == nil {
		return nil, ErrMissingLeaderKey
	}
	sess, err := s.session(ctx, l.Lease)
	if err != nil {
		return nil, err
	}
	return concurrency.ResumeElection(sess, string(l.Name), string(l.Key), l.Rev), nil
}

// Proclaim sets a new value while the caller still leads.
func (s *electionServer) Proclaim(ctx context.Context, req *epb.ProclaimRequest) (*epb.ProclaimResponse, error) {
	e, err := s.resume(ctx, req.Leader)
	if err != nil {
		return nil, err
	}
	if err := e.Proclaim(ctx, string(req.Value)); err != nil {
		return nil, err
	}
	return &epb.ProclaimResponse{Header: e.Header()}, nil
}

// Observe streams the leader's key-value each time leadership or the
// proclaimed value changes.
func (s *electionServer) Observe(req *epb.LeaderRequest, stream epb.Election_ObserveServer) error {
	ctx := stream.Context()
	sess, err := s.session(ctx, -1)
	if err != nil {
		return err
	}
	ch := concurrency.NewElection(sess, string(req.Name)).Observe(ctx)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case resp, ok := <-ch:
			if !ok {
				return nil
			}
			if err := stream.Send(&epb.LeaderResponse{Header: resp.Header, Kv: resp.Kvs[0]}); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// Leader returns the current leader's key-value, or concurrency's
// "election: no leader".
func (s *electionServer) Leader(ctx context.Context, req *epb.LeaderRequest) (*epb.LeaderResponse, error) {
	sess, err := s.session(ctx, -1)
	if err != nil {
		return nil, err
	}
	l, err := concurrency.NewElection(sess, string(req.Name)).Leader(ctx)
	if err != nil {
		return nil, err
	}
	return &epb.LeaderResponse{Header: l.Header, Kv: l.Kvs[0]}, nil
}

// Resign gives up leadership.
func (s *electionServer) Resign(ctx context.Context, req *epb.ResignRequest) (*epb.ResignResponse, error) {
	e, err := s.resume(ctx, req.Leader)
	if err != nil {
		return nil, err
	}
	if err := e.Resign(ctx); err != nil {
		return nil, err
	}
	return &epb.ResignResponse{Header: e.Header()}, nil
}
