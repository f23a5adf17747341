package lifecycle

import (
	"context"
	"fmt"
	"time"
)

// drainPoll is how often DrainGRPC looks at the requests in flight.
const drainPoll = 10 * time.Millisecond

// GRPCServer is the part of *grpc.Server a drain uses.
type GRPCServer interface {
	GracefulStop()
	Stop()
}

// DrainGRPC stops srv the way etcd does: unary requests finish by
// themselves, streams (watches, lease keep-alives) never do, so once
// inFlight (the unary requests in flight) is zero the streams are closed
// and their clients reconnect to another member. When ctx ends first the
// server is stopped at once and the requests still running are cut off.
func DrainGRPC(ctx context.Context, srv GRPCServer, inFlight func() int64) error {
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			srv.Stop()
			<-done
			return fmt.Errorf("in-flight gRPC requests cut off: %w", ctx.Err())
		case <-tick.C:
			if inFlight() == 0 {
				srv.Stop()
				<-done
				return nil
			}
		}
	}
}
