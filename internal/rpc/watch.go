package rpc

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/failpoint"
	"github.com/metastore/metastore/internal/watch"
)

const (
	// grpcOverheadBytes is what etcd adds to --max-request-bytes for the
	// fragmentation threshold (ServerConfig.MaxRequestBytesWithOverhead).
	grpcOverheadBytes = 512 * 1024
	// minProgressNotifyInterval is etcd's lower bound for
	// --watch-progress-notify-interval.
	minProgressNotifyInterval = 100 * time.Millisecond
	defaultProgressInterval   = 10 * time.Minute
)

// WatchServerOptions configure the Watch service.
type WatchServerOptions struct {
	// MaxRequestBytes is --max-request-bytes. A response to a watcher that
	// asked for fragments is split once it exceeds MaxRequestBytes + 512 KiB,
	// as etcd does. 0 means etcd's default 1.5 MiB.
	MaxRequestBytes uint
	// ProgressNotifyInterval is --watch-progress-notify-interval (0: 10m;
	// raised to 100ms if lower, as etcd does). Each stream adds up to 10 %
	// jitter.
	ProgressNotifyInterval time.Duration
	// NewTicker makes a stream's progress ticker; nil uses time.NewTicker.
	// Tests inject their own to drive progress notifications.
	NewTicker func(d time.Duration) (c <-chan time.Time, stop func())
	// CheckPermission, if set, is called for every create request; a non-nil
	// error refuses the watch with created+canceled, watch ID -1 and the
	// error's text as cancel_reason (return rpctypes.ErrGRPCPermissionDenied
	// and friends, as etcd does).
	CheckPermission func(ctx context.Context, key, rangeEnd []byte) error
	Logger          *zap.Logger
}

type watchServer struct {
	pb.UnimplementedWatchServer

	hub      *watch.Hub
	header   func() *pb.ResponseHeader
	lg       *zap.Logger
	fragAt   int
	interval time.Duration
	ticker   func(d time.Duration) (<-chan time.Time, func())
	perm     func(ctx context.Context, key, rangeEnd []byte) error
}

// NewWatchServer serves etcd's Watch service from hub. header returns a
// fresh header with cluster ID, member ID and raft term; the revision is
// set per response.
func NewWatchServer(hub *watch.Hub, header func() *pb.ResponseHeader, opts WatchServerOptions) pb.WatchServer {
	ws := &watchServer{hub: hub, header: header, lg: opts.Logger, perm: opts.CheckPermission, ticker: opts.NewTicker}
	if ws.lg == nil {
		ws.lg = zap.NewNop()
	}
	if ws.header == nil {
		ws.header = func() *pb.ResponseHeader { return &pb.ResponseHeader{} }
	}
	maxReq := opts.MaxRequestBytes
	if maxReq == 0 {
		maxReq = 1572864
	}
	ws.fragAt = int(maxReq) + grpcOverheadBytes
	ws.interval = opts.ProgressNotifyInterval
	if ws.interval <= 0 {
		ws.interval = defaultProgressInterval
	}
	if ws.interval < minProgressNotifyInterval {
		ws.lg.Warn("adjusting watch progress notify interval to minimum period",
			zap.Duration("min-watch-progress-notify-interval", minProgressNotifyInterval))
		ws.interval = minProgressNotifyInterval
	}
	if ws.ticker == nil {
		ws.ticker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	return ws
}

// Watch serves one client stream: a receive goroutine turns requests into
// hub calls, a send goroutine drains the stream's ordered response queue,
// and a ticker drives progress notifications. All watchers are freed when
// the stream ends, however it ends.
func (ws *watchServer) Watch(stream pb.Watch_WatchServer) error {
	ctx := stream.Context()
	s := ws.hub.NewStream()

	var wg sync.WaitGroup
	sendDone := make(chan struct{})
	var sendErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(sendDone)
		sendErr = ws.sendLoop(ctx, s, stream)
	}()
	tickCtx, stopTick := context.WithCancel(ctx)
	go func() {
		defer wg.Done()
		ws.progressLoop(tickCtx, s)
	}()
	// Recv does not watch our goroutines, only the stream's context, so the
	// receive loop cannot join the WaitGroup; it ends with the stream.
	errc := make(chan error, 1)
	go func() { errc <- ws.recvLoop(ctx, s, stream) }()

	var err error
	select {
	case err = <-errc:
		if err == nil {
			// The client half-closed: etcd keeps sending until the stream ends.
			select {
			case <-ctx.Done():
				err = ctx.Err()
			case <-sendDone:
				err = sendErr
			}
		}
	case <-ctx.Done():
		// Recv returns once the transport stream ends, which is after
		// this handler returns when an interceptor cancelled ctx (the
		// RequireLeader monitor does); errc is buffered, so the receive
		// goroutine then ends by itself.
		err = ctx.Err()
	case <-sendDone:
		err = sendErr
	}
	s.Close()
	stopTick()
	wg.Wait()
	switch {
	case errors.Is(err, context.Canceled):
		err = rpctypes.ErrGRPCWatchCanceled
	case errors.Is(err, watch.ErrClosed):
		err = rpctypes.ErrGRPCStopped
	}
	return err
}

func (ws *watchServer) recvLoop(ctx context.Context, s *watch.Stream, stream pb.Watch_WatchServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if !isClientGone(ctx, err) {
				ws.lg.Warn("failed to receive watch request from gRPC stream", zap.Error(err))
			}
			return err
		}
		switch uv := req.RequestUnion.(type) {
		case *pb.WatchRequest_CreateRequest:
			if uv.CreateRequest == nil {
				continue
			}
			err = ws.create(ctx, s, uv.CreateRequest)
		case *pb.WatchRequest_CancelRequest:
			if uv.CancelRequest == nil {
				continue
			}
			_, err = s.Cancel(ctx, uv.CancelRequest.WatchId)
		case *pb.WatchRequest_ProgressRequest:
			if uv.ProgressRequest == nil {
				continue
			}
			err = s.RequestProgress(ctx)
		default:
			// An unknown request does not end the stream (etcd).
			ws.lg.Info("invalid watch request type received in gRPC stream")
			continue
		}
		if err != nil {
			// Only a closed stream or ended context fail a stream call.
			return nil
		}
	}
}

func (ws *watchServer) create(ctx context.Context, s *watch.Stream, creq *pb.WatchCreateRequest) error {
	key := creq.Key
	if len(key) == 0 {
		key = []byte{0} // the smallest key
	}
	if creq.StartRevision < 0 {
		return s.Reject(ctx, rpctypes.ErrCompacted.Error())
	}
	if ws.perm != nil {
		if err := ws.perm(ctx, key, creq.RangeEnd); err != nil {
			return s.Reject(ctx, err.Error())
		}
	}
	req := watch.WatchRequest{
		ID:             creq.WatchId,
		Key:            key,
		End:            creq.RangeEnd,
		StartRev:       creq.StartRevision,
		PrevKV:         creq.PrevKv,
		ProgressNotify: creq.ProgressNotify,
		Fragment:       creq.Fragment,
	}
	for _, f := range creq.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			req.NoPut = true
		case pb.WatchCreateRequest_NODELETE:
			req.NoDelete = true
		}
	}
	_, err := s.Watch(ctx, req)
	if errors.Is(err, watch.ErrDuplicateID) || errors.Is(err, watch.ErrEmptyRange) {
		return nil // refused; the created+canceled response is queued
	}
	return err
}

func (ws *watchServer) sendLoop(ctx context.Context, s *watch.Stream, stream pb.Watch_WatchServer) error {
	for {
		r, err := s.Next(ctx)
		if err != nil {
			return err
		}
		h := ws.header()
		h.Revision = r.Revision
		wr := &pb.WatchResponse{
			Header:          h,
			WatchId:         r.WatchID,
			Created:         r.Created,
			Canceled:        r.Canceled,
			CompactRevision: r.CompactRevision,
			CancelReason:    r.CancelReason,
			Events:          r.Events,
		}
		failpoint.Inject(failpoint.BeforeSendWatchResponse)
		if r.Fragment {
			err = sendFragments(wr, ws.fragAt, stream.Send)
		} else {
			err = stream.Send(wr)
		}
		if err != nil {
			if !isClientGone(ctx, err) {
				ws.lg.Warn("failed to send watch response to gRPC stream", zap.Error(err))
			}
			return err
		}
	}
}

func (ws *watchServer) progressLoop(ctx context.Context, s *watch.Stream) {
	// Jitter keeps streams opened together (a client restart) from all
	// notifying at once.
	d := ws.interval + time.Duration(rand.Int64N(int64(ws.interval)/10+1))
	c, stop := ws.ticker(d)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c:
			s.ProgressTick()
		}
	}
}

// sendFragments splits wr into responses of at most limit bytes (at least
// one event each), all but the last flagged Fragment; clientv3 reassembles
// them. A response under the limit or with one event goes whole.
func sendFragments(wr *pb.WatchResponse, limit int, send func(*pb.WatchResponse) error) error {
	if proto.Size(wr) < limit || len(wr.Events) < 2 {
		return send(wr)
	}
	evs := wr.Events
	for len(evs) > 0 {
		// Each fragment is a new message: gRPC may still hold the previous
		// one when Send returns.
		cur := &pb.WatchResponse{
			Header:          wr.Header,
			WatchId:         wr.WatchId,
			Created:         wr.Created,
			Canceled:        wr.Canceled,
			CompactRevision: wr.CompactRevision,
			CancelReason:    wr.CancelReason,
			Fragment:        true,
		}
		base := proto.Size(cur)
		size, n := base, 0
		for n < len(evs) {
			es := eventWireSize(evs[n])
			if n > 0 && size+es >= limit {
				break
			}
			size += es
			n++
		}
		cur.Events = evs[:n:n]
		evs = evs[n:]
		if len(evs) == 0 {
			cur.Fragment = false
		}
		if err := send(cur); err != nil {
			return err
		}
	}
	return nil
}

// eventWireSize is the bytes ev adds to a WatchResponse (field tag, length
// prefix and body).
func eventWireSize(ev *mvccpb.Event) int {
	n := proto.Size(ev)
	return 1 + varintLen(uint64(n)) + n
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func isClientGone(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.Canceled, codes.DeadlineExceeded:
		return true
	case codes.Unavailable:
		return st.Message() == "client disconnected" || st.Message() == "error reading from server: EOF"
	}
	return false
}
