package server

import (
	"os"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/internal/respbudget"
	"github.com/metastore/metastore/internal/rpc"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
)

// Memory sizing (issue 11): the range response budget, the soft Go memory
// limit and Pebble's cache and memtable sizes, all from metastore's own
// flags, each shown as a gauge so that an operator (and the e2e tests) can
// see what is in force.

// pebbleSizes returns the engine options sized by the flags.
func (s *Server) pebbleSizes(o pebbleengine.Options) pebbleengine.Options {
	o.CacheSize = s.cfg.Limits.StorageBlockCacheBytes
	o.MemTableSize = uint64(s.cfg.Limits.StorageMemtableBytes)
	return o
}

// rangeBudget sets the soft Go memory limit, creates the budget of range
// responses in flight, exports both (and the storage sizes) as metrics, and
// returns the gRPC server option and KV option that enforce the budget.
func (s *Server) rangeBudget() (grpc.ServerOption, rpc.KVOption) {
	l := s.cfg.Limits
	// The soft limit makes the garbage collector work harder as the heap
	// nears --memory-limit-bytes, before the limiter starts refusing
	// writes there. An operator's GOMEMLIMIT wins.
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && l.MemoryLimitBytes > 0 {
		debug.SetMemoryLimit(l.MemoryLimitBytes)
	}
	b := respbudget.New(l.RangeBudget())
	gauge := func(name, help string, f func() float64) {
		err := s.rel.registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
		if err != nil {
			s.lg.Warn("cannot register metric", zap.String("name", name), zap.Error(err))
		}
	}
	counter := func(name, help string, f func() float64) {
		err := s.rel.registry.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
		if err != nil {
			s.lg.Warn("cannot register metric", zap.String("name", name), zap.Error(err))
		}
	}
	gauge("metastore_go_memory_limit_bytes", "The soft Go memory limit in force (debug.SetMemoryLimit; from --memory-limit-bytes unless GOMEMLIMIT is set).",
		func() float64 { return float64(debug.SetMemoryLimit(-1)) })
	gauge("metastore_storage_block_cache_bytes", "Size of the storage engine's block cache (--storage-block-cache-bytes).",
		func() float64 { return float64(l.StorageBlockCacheBytes) })
	gauge("metastore_storage_memtable_bytes", "Size of one storage engine memtable (--storage-memtable-bytes).",
		func() float64 { return float64(l.StorageMemtableBytes) })
	gauge("metastore_range_bytes_in_flight_limit", "Budget of range response bytes being built and sent (--max-range-bytes-in-flight).",
		func() float64 { return float64(b.Stats().Limit) })
	gauge("metastore_range_bytes_in_flight", "Bytes of large range responses being built and sent now.",
		func() float64 { return float64(b.Stats().InFlight) })
	gauge("metastore_range_bytes_in_flight_peak", "Largest value metastore_range_bytes_in_flight has had since the start.",
		func() float64 { return float64(b.Stats().Peak) })
	counter("metastore_range_budget_waits_total", "Ranges that waited for the range response budget.",
		func() float64 { return float64(b.Stats().Waits) })
	counter("metastore_range_budget_overdrafts_total", "Ranges that went past the range response budget alone (so that none waits forever).",
		func() float64 { return float64(b.Stats().Overdrafts) })
	counter("metastore_range_budget_rejected_total", "Ranges refused with ResourceExhausted because their deadline passed while they waited for the budget.",
		func() float64 { return float64(b.Stats().Rejected) })
	return grpc.StatsHandler(rpc.BudgetStatsHandler{}), rpc.WithResponseBudget(b)
}
