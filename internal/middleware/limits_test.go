package middleware

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestInFlightLimitRejectsFast(t *testing.T) {
	const n, k = 3, 4
	reg := prometheus.NewRegistry()
	lim, err := NewLimiter(LimitsConfig{MaxRequests: n, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	us, ss := Chain(ChainOptions{Limits: lim})
	env := startServer(t, us, ss, nil, nil)
	ctx := testCtx(t)

	errs := make(chan error, n)
	for range n {
		go func() { _, err := env.call(ctx, "block"); errs <- err }()
	}
	for range n {
		<-env.svc.entered
	}
	if st := lim.Stats(); st.CurrentRequests != n || st.MaxRequests != n {
		t.Fatalf("Stats = %+v, want %d/%d requests", st, n, n)
	}

	start := time.Now()
	rejected := make(chan error, k)
	for range k {
		go func() { _, err := env.call(ctx, "x"); rejected <- err }()
	}
	for range k {
		err := <-rejected
		if st := status.Convert(err); st.Code() != codes.ResourceExhausted || st.Message() != "etcdserver: too many requests" {
			t.Fatalf("over-limit request = %v, want ResourceExhausted too many requests", err)
		}
		if !errors.Is(rpctypes.Error(err), rpctypes.ErrTooManyRequests) {
			t.Fatalf("clientv3 would not recognise %v as ErrTooManyRequests", err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("rejections took %v; they must not queue", d)
	}
	close(env.svc.release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("admitted request failed: %v", err)
		}
	}
	if _, err := env.call(ctx, "x"); err != nil {
		t.Fatalf("request after the burst: %v", err)
	}
	if st := lim.Stats(); st.CurrentRequests != 0 {
		t.Fatalf("CurrentRequests = %d after all returned", st.CurrentRequests)
	}
	if !contains(scrape(t, reg), `metastore_requests_rejected_total{reason="too_many_requests"} 4`) {
		t.Fatalf("rejections not counted")
	}
}

func unaryInfo(m string) *grpc.UnaryServerInfo { return &grpc.UnaryServerInfo{FullMethod: m} }

func TestRequestTimeoutAppliesToUnaryOnly(t *testing.T) {
	lim, err := NewLimiter(LimitsConfig{RequestTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var left time.Duration
	var has bool
	h := func(ctx context.Context, _ any) (any, error) {
		dl, ok := ctx.Deadline()
		has, left = ok, time.Until(dl)
		return nil, nil
	}
	ui := lim.UnaryServerInterceptor()
	if _, err := ui(context.Background(), nil, unaryInfo("/m"), h); err != nil {
		t.Fatal(err)
	}
	if !has || left > 200*time.Millisecond || left <= 0 {
		t.Fatalf("unary deadline present=%v left=%v, want <= 200ms", has, left)
	}
	// An earlier client deadline is kept.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := ui(ctx, nil, unaryInfo("/m"), h); err != nil {
		t.Fatal(err)
	}
	if left > 50*time.Millisecond {
		t.Fatalf("client deadline replaced: left %v", left)
	}
	// Streams (Watch, LeaseKeepAlive) get no deadline.
	si := lim.StreamServerInterceptor()
	err = si(nil, fakeStream{ctx: context.Background()}, &grpc.StreamServerInfo{FullMethod: "/etcdserverpb.Watch/Watch"},
		func(_ any, ss grpc.ServerStream) error {
			_, has = ss.Context().Deadline()
			return nil
		})
	if err != nil || has {
		t.Fatalf("stream got a deadline (%v, err %v)", has, err)
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f fakeStream) Context() context.Context { return f.ctx }

func TestMemoryWatermarkRejectsWritesOnly(t *testing.T) {
	var usage atomic.Uint64
	usage.Store(100)
	reg := prometheus.NewRegistry()
	lim, err := NewLimiter(LimitsConfig{
		MaxMemoryBytes: 1000,
		MemorySampler:  usage.Load,
		IsWrite:        EtcdWrites,
		Registerer:     reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ui := lim.UnaryServerInterceptor()
	ok := func(context.Context, any) (any, error) { return "ok", nil }
	put := &pb.PutRequest{Key: []byte("k")}
	get := &pb.RangeRequest{Key: []byte("k")}
	call := func(m string, req any) error {
		_, err := ui(context.Background(), req, unaryInfo(m), ok)
		return err
	}

	if err := call("/etcdserverpb.KV/Put", put); err != nil {
		t.Fatalf("put under the limit: %v", err)
	}
	usage.Store(2000)
	if err := call("/etcdserverpb.KV/Put", put); err != nil {
		t.Fatalf("put rejected before the sampler saw the usage: %v", err)
	}
	lim.SampleMemory()
	st := lim.Stats()
	if !st.MemoryOverLimit || st.MemoryUsageBytes != 2000 || st.MaxMemoryBytes != 1000 {
		t.Fatalf("Stats = %+v", st)
	}
	err = call("/etcdserverpb.KV/Put", put)
	if s := status.Convert(err); s.Code() != codes.ResourceExhausted || !contains(s.Message(), "memory") {
		t.Fatalf("put over the limit = %v, want ResourceExhausted about memory", err)
	}
	if err := call("/etcdserverpb.KV/Range", get); err != nil {
		t.Fatalf("read over the limit: %v", err)
	}
	if err := call("/etcdserverpb.KV/DeleteRange", &pb.DeleteRangeRequest{Key: []byte("k")}); err != nil {
		t.Fatalf("delete over the limit: %v", err)
	}
	si := lim.StreamServerInterceptor()
	if err := si(nil, fakeStream{ctx: context.Background()}, &grpc.StreamServerInfo{FullMethod: "/etcdserverpb.Watch/Watch"},
		func(any, grpc.ServerStream) error { return nil }); err != nil {
		t.Fatalf("watch over the limit: %v", err)
	}
	usage.Store(500)
	lim.SampleMemory()
	if err := call("/etcdserverpb.KV/Put", put); err != nil {
		t.Fatalf("put after memory dropped: %v", err)
	}
	if !contains(scrape(t, reg), `metastore_requests_rejected_total{reason="memory"} 1`) {
		t.Fatalf("memory rejection not counted")
	}
}

func TestLimiterRunSamplesOnTicks(t *testing.T) {
	var usage atomic.Uint64
	ticks := make(chan time.Time)
	lim, err := NewLimiter(LimitsConfig{
		MaxMemoryBytes: 10,
		MemorySampler:  usage.Load,
		NewTicker:      func(time.Duration) (<-chan time.Time, func()) { return ticks, func() {} },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { lim.Run(ctx); close(done) }()
	usage.Store(11)
	ticks <- time.Time{}
	ticks <- time.Time{} // the first tick has been handled once the second is taken
	cancel()
	<-done
	if !lim.Stats().MemoryOverLimit {
		t.Fatalf("Run did not sample on its tick")
	}
}

func TestDefaultSamplerReadsHeap(t *testing.T) {
	if HeapLiveBytes() == 0 {
		t.Fatalf("HeapLiveBytes = 0")
	}
}

func TestEtcdWrites(t *testing.T) {
	putOp := &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{}}}
	getOp := &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{}}}
	nested := &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Failure: []*pb.RequestOp{putOp}}}}
	cases := []struct {
		m    string
		req  any
		want bool
	}{
		{"/etcdserverpb.KV/Put", &pb.PutRequest{}, true},
		{"/etcdserverpb.Lease/LeaseGrant", &pb.LeaseGrantRequest{}, true},
		{"/etcdserverpb.KV/Txn", &pb.TxnRequest{Success: []*pb.RequestOp{getOp}}, false},
		{"/etcdserverpb.KV/Txn", &pb.TxnRequest{Failure: []*pb.RequestOp{getOp, putOp}}, true},
		{"/etcdserverpb.KV/Txn", &pb.TxnRequest{Success: []*pb.RequestOp{nested}}, true},
		{"/etcdserverpb.KV/Range", &pb.RangeRequest{}, false},
		{"/etcdserverpb.KV/DeleteRange", &pb.DeleteRangeRequest{}, false},
		{"/etcdserverpb.Watch/Watch", nil, false},
	}
	for _, c := range cases {
		if got := EtcdWrites(c.m, c.req); got != c.want {
			t.Errorf("EtcdWrites(%s, %v) = %v, want %v", c.m, c.req, got, c.want)
		}
	}
}

func TestNewLimiterRejectsNegative(t *testing.T) {
	if _, err := NewLimiter(LimitsConfig{MaxRequests: -1}); err == nil {
		t.Fatalf("negative MaxRequests accepted")
	}
}

// TestProposalTimeoutForProposals: requests EtcdProposals selects get no
// default deadline when the request path bounds them by a ProposalTimeout
// no longer than RequestTimeout; other requests, read-only txns included,
// keep RequestTimeout, and so do proposals when RequestTimeout is shorter.
func TestProposalTimeoutForProposals(t *testing.T) {
	lim, err := NewLimiter(LimitsConfig{RequestTimeout: time.Hour, ProposalTimeout: time.Minute, IsProposal: EtcdProposals})
	if err != nil {
		t.Fatal(err)
	}
	var left time.Duration
	var has bool
	h := func(ctx context.Context, _ any) (any, error) {
		var dl time.Time
		dl, has = ctx.Deadline()
		left = time.Until(dl)
		return nil, nil
	}
	put := &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("k")}}}
	get := &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k")}}}
	for _, c := range []struct {
		method string
		req    any
		want   time.Duration // 0: no deadline
	}{
		{"/etcdserverpb.KV/Put", &pb.PutRequest{}, 0},
		{"/etcdserverpb.KV/DeleteRange", &pb.DeleteRangeRequest{}, 0},
		{"/etcdserverpb.KV/Txn", &pb.TxnRequest{Success: []*pb.RequestOp{put}}, 0},
		{"/etcdserverpb.KV/Txn", &pb.TxnRequest{Success: []*pb.RequestOp{get}}, time.Hour},
		{"/etcdserverpb.KV/Range", &pb.RangeRequest{}, time.Hour},
		{"/etcdserverpb.Maintenance/Defragment", &pb.DefragmentRequest{}, time.Hour},
	} {
		if _, err := lim.UnaryServerInterceptor()(context.Background(), c.req, unaryInfo(c.method), h); err != nil {
			t.Fatal(err)
		}
		switch {
		case c.want == 0 && has:
			t.Errorf("%s %v: deadline in %v, want none", c.method, c.req, left)
		case c.want > 0 && (!has || left > c.want || left < c.want-time.Minute/2):
			t.Errorf("%s %v: deadline %v in %v, want about %v", c.method, c.req, has, left, c.want)
		}
	}
	// A RequestTimeout shorter than ProposalTimeout applies to proposals.
	short, err := NewLimiter(LimitsConfig{RequestTimeout: time.Second, ProposalTimeout: time.Minute, IsProposal: EtcdProposals})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := short.UnaryServerInterceptor()(context.Background(), &pb.PutRequest{}, unaryInfo("/etcdserverpb.KV/Put"), h); err != nil {
		t.Fatal(err)
	}
	if !has || left > time.Second {
		t.Errorf("put with RequestTimeout 1s: deadline %v in %v", has, left)
	}
}

// TestNoDefaultDeadlineForLocalWork: a physical Compact, Defragment, Hash
// and HashKV get no default deadline (etcd bounds none of them, and the work
// goes on when the call fails); a logical Compact and other requests do.
func TestNoDefaultDeadlineForLocalWork(t *testing.T) {
	lim, err := NewLimiter(LimitsConfig{RequestTimeout: time.Minute, IsLocalWork: EtcdLocalWork})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method   string
		req      any
		deadline bool
	}{
		{"/etcdserverpb.KV/Compact", &pb.CompactionRequest{Revision: 5, Physical: true}, false},
		{"/etcdserverpb.KV/Compact", &pb.CompactionRequest{Revision: 5}, true},
		{"/etcdserverpb.Maintenance/Defragment", &pb.DefragmentRequest{}, false},
		{"/etcdserverpb.Maintenance/Hash", &pb.HashRequest{}, false},
		{"/etcdserverpb.Maintenance/HashKV", &pb.HashKVRequest{}, false},
		{"/etcdserverpb.Maintenance/Status", &pb.StatusRequest{}, true},
		{"/etcdserverpb.KV/Range", &pb.RangeRequest{}, true},
	} {
		var has bool
		h := func(ctx context.Context, _ any) (any, error) {
			_, has = ctx.Deadline()
			return nil, nil
		}
		if _, err := lim.UnaryServerInterceptor()(context.Background(), c.req, unaryInfo(c.method), h); err != nil {
			t.Fatal(err)
		}
		if has != c.deadline {
			t.Errorf("%s %v: deadline %v, want %v", c.method, c.req, has, c.deadline)
		}
	}
}
