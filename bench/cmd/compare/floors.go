package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The floors are what a put from one client cannot go below on this
// machine, whatever the server: one fdatasync of the data dir's filesystem
// (both servers sync every acknowledged write) plus one gRPC round trip on
// loopback. They are measured in the same run as the servers, once per
// round, so that put-1 latency is shown against the physical limit and
// not only against etcd.

// fsyncLatencies writes 4 KiB and fdatasyncs, n times, into a new file in
// dir, and returns each write+fdatasync's latency. With overwrite the file
// is first written in full and synced, and the timed writes overwrite it
// sequentially: no block allocation or size change has to reach the
// journal, so this is the cheapest durable 4 KiB write the filesystem
// offers, the floor (a write-ahead log that recycles or has already
// written its files pays this). Without it each write appends, and each
// fdatasync also commits the new size and blocks to the journal (what a
// log growing a new file pays).
func fsyncLatencies(dir string, n int, overwrite bool) ([]time.Duration, error) {
	const block = 4096
	f, err := os.CreateTemp(dir, "fsync-floor.")
	if err != nil {
		return nil, fmt.Errorf("fsync floor: %w", err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	buf := make([]byte, block)
	for i := range buf {
		buf[i] = byte(i)
	}
	for i := 0; overwrite && i < n; i++ {
		if _, err := f.Write(buf); err != nil {
			return nil, fmt.Errorf("fsync floor: preallocate: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("fsync floor: %w", err)
	}
	fd := int(f.Fd())
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		buf[0] = byte(i) // new contents each time
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*block); err != nil {
			return nil, fmt.Errorf("fsync floor: write: %w", err)
		}
		if err := unix.Fdatasync(fd); err != nil {
			return nil, fmt.Errorf("fsync floor: fdatasync: %w", err)
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

// grpcRTTs times n sequential calls of an RPC that does no work (the
// standard health service's Check) from a client to a gRPC server in this
// process, over one connection on 127.0.0.1. The client is an etcd
// clientv3 client, as etcd's benchmark tool creates it (clientv3.New with
// the endpoint only), and the call goes through its connection, so the
// client side has the same gRPC settings and interceptors as the load.
func grpcRTTs(ctx context.Context, n int) ([]time.Duration, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("rtt floor: %w", err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	defer func() {
		srv.Stop()
		<-served
	}()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{lis.Addr().String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("rtt floor: client: %w", err)
	}
	defer cli.Close()
	hc := healthpb.NewHealthClient(cli.ActiveConnection())
	call := func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			err = fmt.Errorf("status %v", resp.GetStatus())
		}
		return err
	}
	// Warm up: connection, HTTP/2 windows, gRPC's buffer pools.
	for i := 0; i < 200; i++ {
		if err := call(); err != nil {
			return nil, fmt.Errorf("rtt floor: warm-up call: %w", err)
		}
	}
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := call(); err != nil {
			return nil, fmt.Errorf("rtt floor: call %d: %w", i, err)
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of ds.
func percentile(ds []time.Duration, p float64) (time.Duration, bool) {
	if len(ds) == 0 || p <= 0 || p > 100 {
		return 0, false
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[rank-1], true
}

// ms formats d in milliseconds with microsecond precision.
func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

// floorBench is the bench name under which the floors are recorded (server
// "floor").
const floorBench = "floor"

// measureFloors measures both floors and records their median and p99 in
// ms; a floor that cannot be measured is recorded as NA and noted in the
// failures (the servers' numbers stand without it).
func (h *harness) measureFloors(round int) {
	lat, err := fsyncLatencies(filepath.Join(h.work, "data"), h.cfg.n["FSYNC_N"], true)
	h.recordLatencies(round, "fsync", lat, err)
	lat, err = fsyncLatencies(filepath.Join(h.work, "data"), h.cfg.n["FSYNC_N"], false)
	h.recordLatencies(round, "fsync_append", lat, err)
	lat, err = grpcRTTs(h.ctx, h.cfg.n["RTT_N"])
	h.recordLatencies(round, "rtt", lat, err)
}

func (h *harness) recordLatencies(round int, what string, lat []time.Duration, err error) {
	med, ok := percentile(lat, 50)
	p99, _ := percentile(lat, 99)
	if err == nil && !ok {
		err = errors.New("no sample")
	}
	if err != nil {
		h.failf("### round %d, floor %s: %v\n", round, what, err)
		logf("  floor %s: %v", what, err)
		h.record(round, "floor", floorBench, what+"_med_ms", "NA")
		h.record(round, "floor", floorBench, what+"_p99_ms", "NA")
		return
	}
	logf("  floor %s: median %sms p99 %sms (%d samples)", what, ms(med), ms(p99), len(lat))
	h.record(round, "floor", floorBench, what+"_med_ms", ms(med))
	h.record(round, "floor", floorBench, what+"_p99_ms", ms(p99))
}
