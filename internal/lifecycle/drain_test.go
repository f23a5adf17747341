package lifecycle

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// streamServer is a gRPC server with a stream open: GracefulStop returns
// only once Stop closed it.
type streamServer struct {
	stopped chan struct{}
	stops   atomic.Int32
}

func (s *streamServer) GracefulStop() { <-s.stopped }
func (s *streamServer) Stop() {
	if s.stops.Add(1) == 1 {
		close(s.stopped)
	}
}

func TestDrainGRPCClosesStreamsOnceUnaryRequestsFinished(t *testing.T) {
	srv := &streamServer{stopped: make(chan struct{})}
	var inFlight atomic.Int64
	inFlight.Store(2)
	polls := atomic.Int32{}
	err := DrainGRPC(context.Background(), srv, func() int64 {
		// Each poll sees one request fewer finish.
		polls.Add(1)
		return inFlight.Add(-1)
	})
	if err != nil || srv.stops.Load() != 1 || polls.Load() != 2 {
		t.Fatalf("err %v, %d stops after %d polls; want nil, 1 stop after 2 polls", err, srv.stops.Load(), polls.Load())
	}
}

func TestDrainGRPCCutsOffAtTheDeadline(t *testing.T) {
	srv := &streamServer{stopped: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := DrainGRPC(ctx, srv, func() int64 { return 1 })
	if !errors.Is(err, context.Canceled) || srv.stops.Load() != 1 {
		t.Fatalf("err %v, %d stops", err, srv.stops.Load())
	}
}

type idleServer struct{ stops atomic.Int32 }

func (s *idleServer) GracefulStop() {}
func (s *idleServer) Stop()         { s.stops.Add(1) }

func TestDrainGRPCIdle(t *testing.T) {
	srv := &idleServer{}
	if err := DrainGRPC(context.Background(), srv, func() int64 { return 5 }); err != nil {
		t.Fatal(err)
	}
}
