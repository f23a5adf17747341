package rpc

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/watch"
)

const wtTimeout = 10 * time.Second

// wtStore is an in-memory revisioned store that feeds the hub the way the
// MVCC store's commit hook does.
type wtStore struct {
	mu      sync.Mutex
	rev     int64
	compact int64
	kvs     map[string]*mvccpb.KeyValue
	hist    []*mvccpb.Event
	hub     *watch.Hub
}

type wtOp struct {
	del   bool
	key   string
	value []byte
}

func (f *wtStore) txn(ops ...wtOp) int64 {
	f.mu.Lock()
	rev := f.rev + 1
	var evs []*mvccpb.Event
	for _, o := range ops {
		prev := f.kvs[o.key]
		if o.del {
			if prev != nil {
				delete(f.kvs, o.key)
				evs = append(evs, &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte(o.key), ModRevision: rev}, PrevKv: prev})
			}
			continue
		}
		kv := &mvccpb.KeyValue{Key: []byte(o.key), Value: o.value, ModRevision: rev, CreateRevision: rev, Version: 1}
		if prev != nil {
			kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
		}
		f.kvs[o.key] = kv
		evs = append(evs, &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv, PrevKv: prev})
	}
	if len(evs) == 0 {
		f.mu.Unlock()
		return f.rev
	}
	f.rev = rev
	f.hist = append(f.hist, evs...)
	f.mu.Unlock()
	f.hub.Notify(rev, evs)
	return rev
}

func (f *wtStore) put(k, v string) int64 { return f.txn(wtOp{key: k, value: []byte(v)}) }

func (f *wtStore) Rev() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rev
}

func (f *wtStore) CompactRev() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.compact
}

// PrevKV finds key's newest version at rev in the history (events here
// always carry their PrevKv, so the hub does not need it).
func (f *wtStore) PrevKV(_ context.Context, key []byte, rev int64) (*mvccpb.KeyValue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.hist) - 1; i >= 0; i-- {
		if e := f.hist[i]; e.Kv.ModRevision <= rev && bytes.Equal(e.Kv.Key, key) {
			if e.Type == mvccpb.Event_DELETE {
				return nil, nil
			}
			return e.Kv, nil
		}
	}
	return nil, nil
}

func (f *wtStore) Events(_ context.Context, from, to int64, key, end []byte, limit int) ([]*mvccpb.Event, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if from < f.compact {
		return nil, 0, fmt.Errorf("compacted at %d", f.compact)
	}
	var out []*mvccpb.Event
	for _, e := range f.hist {
		r := e.Kv.ModRevision
		if r < from || r > to {
			continue
		}
		in := bytes.Equal(e.Kv.Key, key)
		if len(end) > 0 {
			in = bytes.Compare(e.Kv.Key, key) >= 0 && (bytes.Equal(end, []byte{0}) || bytes.Compare(e.Kv.Key, end) < 0)
		}
		if in {
			out = append(out, &mvccpb.Event{Type: e.Type, Kv: e.Kv, PrevKv: e.PrevKv})
		}
	}
	return out, to + 1, nil
}

// wtServer is a Watch service on 127.0.0.1 with a clientv3 client.
type wtServer struct {
	store   *wtStore
	hub     *watch.Hub
	srv     *grpc.Server
	addr    string
	cli     *clientv3.Client
	ended   chan struct{} // one value per finished Watch handler
	tick    chan time.Time
	stopped bool
}

type wtNotifyingWatch struct {
	pb.WatchServer
	ended chan struct{}
}

func (w wtNotifyingWatch) Watch(s pb.Watch_WatchServer) error {
	defer func() { w.ended <- struct{}{} }()
	return w.WatchServer.Watch(s)
}

func newWTServer(t *testing.T, opts WatchServerOptions) *wtServer {
	t.Helper()
	ts := &wtServer{store: &wtStore{rev: 1, compact: -1, kvs: map[string]*mvccpb.KeyValue{}}, ended: make(chan struct{}, 1000), tick: make(chan time.Time)}
	ts.hub = watch.NewHub(ts.store, zap.NewNop(), watch.Options{})
	ts.store.hub = ts.hub
	if opts.NewTicker == nil {
		opts.NewTicker = func(time.Duration) (<-chan time.Time, func()) { return ts.tick, func() {} }
	}
	header := func() *pb.ResponseHeader { return &pb.ResponseHeader{ClusterId: 1, MemberId: 2, RaftTerm: 3} }
	ts.srv = grpc.NewServer(grpc.WaitForHandlers(true))
	pb.RegisterWatchServer(ts.srv, wtNotifyingWatch{NewWatchServer(ts.hub, header, opts), ts.ended})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = lis.Addr().String()
	go func() { _ = ts.srv.Serve(lis) }()
	ts.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{ts.addr}, DialTimeout: wtTimeout, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.stop)
	return ts
}

func (ts *wtServer) stop() {
	if ts.stopped {
		return
	}
	ts.stopped = true
	_ = ts.cli.Close()
	ts.srv.Stop()
	ts.hub.Close()
}

func wtCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wtTimeout)
	t.Cleanup(cancel)
	return ctx
}

func wtRecv(t *testing.T, wch clientv3.WatchChan) clientv3.WatchResponse {
	t.Helper()
	select {
	case r, ok := <-wch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return r
	case <-time.After(wtTimeout):
		t.Fatal("no watch response")
	}
	panic("unreachable")
}

func wtEvents(t *testing.T, wch clientv3.WatchChan, n int) []*clientv3.Event {
	t.Helper()
	var evs []*clientv3.Event
	for len(evs) < n {
		r := wtRecv(t, wch)
		if err := r.Err(); err != nil {
			t.Fatalf("watch error: %v", err)
		}
		evs = append(evs, r.Events...)
	}
	if len(evs) != n {
		t.Fatalf("got %d events, want %d", len(evs), n)
	}
	return evs
}

func wtDescribe(evs []*clientv3.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s %s=%s@%d", e.Type, e.Kv.Key, e.Kv.Value, e.Kv.ModRevision)
		if e.PrevKv != nil {
			fmt.Fprintf(&b, "(prev %s)", e.PrevKv.Value)
		}
		b.WriteString(";")
	}
	return b.String()
}

func TestWatchClientv3Semantics(t *testing.T) {
	ts := newWTServer(t, WatchServerOptions{})
	ctx := wtCtx(t)
	cli := ts.cli

	wKey := cli.Watch(ctx, "a", clientv3.WithCreatedNotify())
	if r := wtRecv(t, wKey); !r.Created {
		t.Fatalf("first response not created: %+v", r)
	}
	wPrefix := cli.Watch(ctx, "p/", clientv3.WithPrefix(), clientv3.WithPrevKV())
	wFrom := cli.Watch(ctx, "p/m", clientv3.WithFromKey())
	wRange := cli.Watch(ctx, "b", clientv3.WithRange("d"), clientv3.WithFilterPut())
	wNoDel := cli.Watch(ctx, "b", clientv3.WithRange("d"), clientv3.WithFilterDelete())
	wAll := cli.Watch(ctx, "", clientv3.WithFromKey())
	// Watches are registered one after another; this one being created
	// means all the above are.
	if r := wtRecv(t, cli.Watch(ctx, "zz", clientv3.WithCreatedNotify())); !r.Created {
		t.Fatal("not created")
	}

	ts.store.put("a", "1")                                                                                                       // 2
	ts.store.put("p/x", "1")                                                                                                     // 3
	ts.store.txn(wtOp{key: "p/x", value: []byte("2")}, wtOp{key: "p/z", value: []byte("1")}, wtOp{key: "c", value: []byte("1")}) // 4
	ts.store.txn(wtOp{key: "c", del: true}, wtOp{key: "p/x", del: true})                                                         // 5
	ts.store.put("q", "1")                                                                                                       // 6

	if got := wtDescribe(wtEvents(t, wKey, 1)); got != "PUT a=1@2;" {
		t.Fatalf("key: %s", got)
	}
	if got := wtDescribe(wtEvents(t, wPrefix, 4)); got != "PUT p/x=1@3;PUT p/x=2@4(prev 1);PUT p/z=1@4;DELETE p/x=@5(prev 2);" {
		t.Fatalf("prefix: %s", got)
	}
	if got := wtDescribe(wtEvents(t, wFrom, 5)); got != "PUT p/x=1@3;PUT p/x=2@4;PUT p/z=1@4;DELETE p/x=@5;PUT q=1@6;" {
		t.Fatalf("from key: %s", got)
	}
	if got := wtDescribe(wtEvents(t, wRange, 1)); got != "DELETE c=@5;" {
		t.Fatalf("NOPUT: %s", got)
	}
	if got := wtDescribe(wtEvents(t, wNoDel, 1)); got != "PUT c=1@4;" {
		t.Fatalf("NODELETE: %s", got)
	}
	// A txn's events arrive in one response, in operation order.
	r := wtRecv(t, wAll)
	r = wtRecv(t, wAll)
	r = wtRecv(t, wAll)
	if got := wtDescribe(r.Events); got != "PUT p/x=2@4;PUT p/z=1@4;PUT c=1@4;" || r.Header.Revision != 4 || r.Header.ClusterId != 1 || r.Header.MemberId != 2 || r.Header.RaftTerm != 3 {
		t.Fatalf("txn response: %s %v", got, r.Header)
	}

	// A past revision replays history in order, then continues live.
	wRev := cli.Watch(ctx, "", clientv3.WithFromKey(), clientv3.WithRev(3))
	ts.store.put("z", "live") // 7
	evs := wtEvents(t, wRev, 8)
	for i, want := range []int64{3, 4, 4, 4, 5, 5, 6, 7} {
		if evs[i].Kv.ModRevision != want {
			t.Fatalf("replay: %s", wtDescribe(evs))
		}
	}
}

func TestWatchCompactedAndRejected(t *testing.T) {
	ts := newWTServer(t, WatchServerOptions{})
	ctx := wtCtx(t)
	for i := 0; i < 10; i++ {
		ts.store.put("k", fmt.Sprint(i))
	}
	ts.store.mu.Lock()
	ts.store.compact = 8
	ts.store.mu.Unlock()
	r := wtRecv(t, ts.cli.Watch(ctx, "k", clientv3.WithRev(3)))
	if r.Err() != rpctypes.ErrCompacted || r.CompactRevision != 8 || !r.Canceled {
		t.Fatalf("compacted watch: err %v, %+v", r.Err(), r)
	}

	// Raw stream: negative start revision, duplicate and invalid watch IDs.
	conn, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	create := func(c *pb.WatchCreateRequest) *pb.WatchResponse {
		t.Helper()
		if err := st.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: c}}); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: -1})
	if !resp.Created || !resp.Canceled || resp.WatchId != -1 || resp.CancelReason != rpctypes.ErrCompacted.Error() {
		t.Fatalf("negative start: %+v", resp)
	}
	resp = create(&pb.WatchCreateRequest{Key: []byte("k"), WatchId: 7})
	if !resp.Created || resp.Canceled || resp.WatchId != 7 || resp.Header.Revision != 11 {
		t.Fatalf("chosen id: %+v", resp)
	}
	resp = create(&pb.WatchCreateRequest{Key: []byte("k"), WatchId: 7})
	if !resp.Created || !resp.Canceled || resp.WatchId != -1 || resp.CancelReason != "mvcc: duplicate watch ID provided on the WatchStream" {
		t.Fatalf("duplicate id: %+v", resp)
	}
	resp = create(&pb.WatchCreateRequest{Key: []byte("k")})
	if resp.WatchId != 0 || resp.Canceled {
		t.Fatalf("auto id: %+v", resp)
	}
	resp = create(&pb.WatchCreateRequest{Key: []byte("z"), RangeEnd: []byte("a")})
	if resp.WatchId != -1 || !resp.Canceled || resp.CancelReason != "mvcc: watcher range is empty" {
		t.Fatalf("empty range: %+v", resp)
	}
	// Cancel: a canceled response, then nothing more for that ID.
	if err := st.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: 7}}}); err != nil {
		t.Fatal(err)
	}
	if resp, err = st.Recv(); err != nil || !resp.Canceled || resp.WatchId != 7 {
		t.Fatalf("cancel: %+v %v", resp, err)
	}
	ts.store.put("k", "after")
	if resp, err = st.Recv(); err != nil || resp.WatchId != 0 || len(resp.Events) != 1 {
		t.Fatalf("event after cancel: %+v %v", resp, err)
	}
}

func TestWatchProgress(t *testing.T) {
	ts := newWTServer(t, WatchServerOptions{})
	ctx := wtCtx(t)
	cli := ts.cli
	w1 := cli.Watch(ctx, "a", clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	wtRecv(t, w1)
	w2 := cli.Watch(ctx, "b", clientv3.WithCreatedNotify())
	wtRecv(t, w2)
	ts.store.put("c", "1")
	rev := ts.store.put("c", "2")

	// WatchProgressRequest: watch_id -1, broadcast by clientv3 to every
	// watcher of the stream, at the current revision.
	if err := cli.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	for _, w := range []clientv3.WatchChan{w1, w2} {
		r := wtRecv(t, w)
		if !r.IsProgressNotify() || r.Header.Revision != rev {
			t.Fatalf("progress: %+v", r)
		}
	}
	// progress_notify ticks (injected ticker): only w1 asked for them.
	ts.tick <- time.Now()
	r := wtRecv(t, w1)
	if !r.IsProgressNotify() || r.Header.Revision != rev {
		t.Fatalf("progress notify: %+v", r)
	}
	// After an event the next tick is elided.
	ts.store.put("a", "x")
	wtEvents(t, w1, 1)
	ts.tick <- time.Now()
	ts.tick <- time.Now() // the ticker goroutine took the first one: ticks are processed in order
	r = wtRecv(t, w1)
	if !r.IsProgressNotify() || r.Header.Revision != rev+1 {
		t.Fatalf("progress notify after event: %+v", r)
	}
}

func TestWatchFragment(t *testing.T) {
	ts := newWTServer(t, WatchServerOptions{MaxRequestBytes: 1})
	ctx := wtCtx(t)
	big := bytes.Repeat([]byte("v"), 200<<10)
	ops := make([]wtOp, 8)
	for i := range ops {
		ops[i] = wtOp{key: fmt.Sprintf("f/%d", i), value: big}
	}

	conn, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("f/"), RangeEnd: []byte("f0"), Fragment: true}}}); err != nil {
		t.Fatal(err)
	}
	if resp, err := st.Recv(); err != nil || !resp.Created {
		t.Fatalf("created: %v %v", resp, err)
	}
	wch := ts.cli.Watch(ctx, "f/", clientv3.WithPrefix(), clientv3.WithFragment(), clientv3.WithCreatedNotify())
	wtRecv(t, wch)
	ts.store.txn(ops...)

	frags, n := 0, 0
	for n < len(ops) {
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		frags++
		n += len(resp.Events)
		if resp.Fragment != (n < len(ops)) {
			t.Fatalf("fragment flag %v with %d/%d events", resp.Fragment, n, len(ops))
		}
		if s := wtProtoSize(resp); s > 512<<10+1+len(big)+1024 {
			t.Fatalf("fragment of %d bytes", s)
		}
	}
	if frags < 3 {
		t.Fatalf("%d fragments", frags)
	}
	r := wtRecv(t, wch)
	if len(r.Events) != len(ops) {
		t.Fatalf("clientv3 reassembled %d events", len(r.Events))
	}
}

// Closing the client frees every watcher on the server and leaves no
// goroutine of ours behind.
func TestWatchDisconnectFreesWatchers(t *testing.T) {
	ts := newWTServer(t, WatchServerOptions{})
	ctx := wtCtx(t)
	for i := 0; i < 50; i++ {
		wtRecv(t, ts.cli.Watch(ctx, fmt.Sprintf("k%d", i), clientv3.WithCreatedNotify(), clientv3.WithPrevKV()))
	}
	for i := 0; i < 10; i++ {
		ts.store.put(fmt.Sprintf("k%d", i), "v")
	}
	if n := ts.hub.WatcherCount(); n != 50 {
		t.Fatalf("watchers: %d", n)
	}
	_ = ts.cli.Close()
	select {
	case <-ts.ended:
	case <-time.After(wtTimeout):
		t.Fatal("Watch handler did not return after the client closed")
	}
	if n := ts.hub.WatcherCount(); n != 0 {
		t.Fatalf("watchers after disconnect: %d", n)
	}
	ts.stop()
	// Goroutines that already signalled completion may still be returning:
	// give them a bounded number of scheduler turns.
	var leaked string
	for i := 0; i < 1000; i++ {
		if leaked = wtOurGoroutine(); leaked == "" {
			return
		}
		runtime.Gosched()
	}
	t.Fatalf("leaked goroutine:\n%s", leaked)
}

func wtOurGoroutine() string {
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, g := range strings.Split(stacks, "\n\n") {
		if (strings.Contains(g, "metastore/internal/watch") || strings.Contains(g, "metastore/internal/rpc")) && !strings.Contains(g, "testing.tRunner") {
			return g
		}
	}
	return ""
}

func wtProtoSize(m *pb.WatchResponse) int { return proto.Size(m) }
