package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The watch mode (issue 11): W watchers over K keys, spread over S streams
// on S/10 connections, all drained; a put load measures p50/p99 first with
// nothing else, then with one more stream that watches every key and is
// never read (its windows pinned at 64 KiB, so it stops after that much).
// A server that isolates slow streams keeps the second p99 near the first.

type watchSettings struct {
	watchers, keys, streams, puts, putClients int
}

type watchResult struct {
	server        string
	setup         time.Duration
	base, stalled []time.Duration
	events        int64
	// expected is the events the puts must deliver to the drained
	// watchers (every key has watchers/keys of them).
	expected int64
}

func watchKey(i int) string { return fmt.Sprintf("/w/%05d", i) }

func runWatch(s settings, w watchSettings) error {
	return forEachServer(s, "watch", func(srv server) error {
		r, err := measureWatch(w, srv)
		if err != nil {
			return err
		}
		b99, s99 := pct(r.base, 0.99), pct(r.stalled, 0.99)
		fmt.Printf("%-9s watchers=%d keys=%d streams=%d puts=%d clients=%d: setup %.1fs, events delivered %d of %d, "+
			"put p50/p99 without stall %.2f/%.2f ms, with a stalled stream %.2f/%.2f ms, p99 ratio %.2f\n",
			r.server, w.watchers, w.keys, w.streams, w.puts, w.putClients, r.setup.Seconds(), r.events, r.expected,
			ms(pct(r.base, 0.5)), ms(b99), ms(pct(r.stalled, 0.5)), ms(s99), float64(s99)/float64(max(b99, 1)))
		return nil
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func measureWatch(w watchSettings, srv server) (watchResult, error) {
	r := watchResult{server: srv.name}
	url, c := srv.url, srv.c
	var err error
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	t0 := time.Now()
	val := strings.Repeat("v", 256)
	for i := 0; i < w.keys; i += 100 {
		var ops []clientv3.Op
		for j := i; j < min(i+100, w.keys); j++ {
			ops = append(ops, clientv3.OpPut(watchKey(j), val))
		}
		if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
			return r, fmt.Errorf("load: %w", err)
		}
	}
	addr := strings.TrimPrefix(url, "http://")
	var conns []*grpc.ClientConn
	defer func() {
		for _, cc := range conns {
			cc.Close()
		}
	}()
	dial := func(opts ...grpc.DialOption) (*grpc.ClientConn, error) {
		cc, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
		if err == nil {
			conns = append(conns, cc)
		}
		return cc, err
	}
	// Watchers: stream i watches keys i, i+S, i+2S, ... (cycling over the
	// key space), so every key has W/K watchers spread over the streams.
	perStream := w.watchers / w.streams
	var wg sync.WaitGroup
	errc := make(chan error, w.streams)
	var cc *grpc.ClientConn
	for si := range w.streams {
		if si%10 == 0 {
			if cc, err = dial(); err != nil {
				return r, err
			}
		}
		ws, err := pb.NewWatchClient(cc).Watch(ctx)
		if err != nil {
			return r, fmt.Errorf("open stream: %w", err)
		}
		for j := range perStream {
			k := watchKey((si + j*w.streams) % w.keys)
			if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte(k)}}}); err != nil {
				return r, fmt.Errorf("create watcher: %w", err)
			}
		}
		created := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for {
				resp, err := ws.Recv()
				if err != nil {
					if ctx.Err() == nil {
						errc <- fmt.Errorf("watch stream: %w", err)
					}
					return
				}
				if resp.Created {
					if n++; n == perStream {
						close(created)
					}
				}
				atomic.AddInt64(&r.events, int64(len(resp.Events)))
			}
		}()
		select {
		case <-created:
		case err := <-errc:
			return r, err
		case <-time.After(2 * time.Minute):
			return r, errors.New("watchers not created after 2 minutes")
		}
	}
	r.setup = time.Since(t0)

	putLoad := func() ([]time.Duration, error) {
		lat := make([]time.Duration, w.puts)
		var next atomic.Int64
		var pw sync.WaitGroup
		perr := make(chan error, w.putClients)
		for range w.putClients {
			pw.Add(1)
			go func() {
				defer pw.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= w.puts {
						return
					}
					pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
					t := time.Now()
					_, err := c.Put(pctx, watchKey(rand.IntN(w.keys)), val)
					pcancel()
					if err != nil {
						perr <- err
						return
					}
					lat[i] = time.Since(t)
				}
			}()
		}
		pw.Wait()
		select {
		case err := <-perr:
			return nil, err
		default:
			return lat, nil
		}
	}
	if r.base, err = putLoad(); err != nil {
		return r, fmt.Errorf("puts without a stalled stream: %w", err)
	}
	scc, err := dial(grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		return r, err
	}
	sws, err := pb.NewWatchClient(scc).Watch(ctx)
	if err != nil {
		return r, err
	}
	end := []byte(watchKey(w.keys))
	if err := sws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte(watchKey(0)), RangeEnd: end, PrevKv: true}}}); err != nil {
		return r, err
	}
	if resp, err := sws.Recv(); err != nil || !resp.Created {
		return r, fmt.Errorf("stalled watcher not created: %v", err)
	}
	if r.stalled, err = putLoad(); err != nil {
		return r, fmt.Errorf("puts with a stalled stream: %w", err)
	}
	select {
	case err := <-errc:
		return r, err
	default:
	}
	// A put's reply can come before its events reach every watcher: wait
	// (bounded) for all of them, so that a count below the expected one
	// means events were lost, not still in flight.
	r.expected = int64(2 * w.puts * (w.watchers / w.keys))
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
wait:
	for atomic.LoadInt64(&r.events) < r.expected {
		select {
		case <-tick.C:
		case <-deadline:
			break wait
		}
	}
	cancel()
	wg.Wait()
	if r.events != r.expected {
		return r, fmt.Errorf("the drained watchers got %d events, want %d (10 s after the last put)", r.events, r.expected)
	}
	return r, nil
}
