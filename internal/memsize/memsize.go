package memsize

import (
	"os"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/respbudget"
	"github.com/metastore/metastore/internal/rpc"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
)

// PebbleSizes returns o with the engine's cache and memtable sized by the
// flags.
func PebbleSizes(l config.LimitsConfig, o pebbleengine.Options) pebbleengine.Options {
	o.CacheSize = l.StorageBlockCacheBytes
	o.MemTableSize = uint64(l.StorageMemtableBytes)
	return o
}

// SetGoMemoryLimit sets the soft Go memory limit to --memory-limit-bytes:
// the garbage collector works harder as the heap nears it, before the
// limiter starts refusing writes there. An operator's GOMEMLIMIT wins, and
// so does no limit (0). It reports whether it set the limit.
func SetGoMemoryLimit(limit int64, lookupEnv func(string) (string, bool)) bool {
	if _, set := lookupEnv("GOMEMLIMIT"); set || limit <= 0 {
		return false
	}
	debug.SetMemoryLimit(limit)
	return true
}

// Apply sets the soft Go memory limit, creates the budget of range
// responses in flight, registers the sizes and the budget's figures with
// reg, and returns the gRPC server option and KV option that enforce the
// budget.
func Apply(l config.LimitsConfig, reg prometheus.Registerer, lg *zap.Logger) (grpc.ServerOption, rpc.KVOption) {
	SetGoMemoryLimit(l.MemoryLimitBytes, os.LookupEnv)
	b := respbudget.New(l.RangeBudget())
	register := func(c prometheus.Collector, name string) {
		if err := reg.Register(c); err != nil {
			lg.Warn("cannot register metric", zap.String("name", name), zap.Error(err))
		}
	}
	gauge := func(name, help string, f func() float64) {
		register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f), name)
	}
	counter := func(name, help string, f func() float64) {
		register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f), name)
	}
	gauge("metastore_go_memory_limit_bytes", "The soft Go memory limit in force (debug.SetMemoryLimit; from --memory-limit-bytes unless GOMEMLIMIT is set).",
		func() float64 { return float64(debug.SetMemoryLimit(-1)) })
	gauge("metastore_storage_block_cache_bytes", "Size of the storage engine's block cache (--storage-block-cache-bytes).",
		func() float64 { return float64(l.StorageBlockCacheBytes) })
	gauge("metastore_storage_key_cache_limit_bytes", "Budget of the cache of keys' newest versions (--storage-key-cache-bytes; 0: off).",
		func() float64 { return float64(l.StorageKeyCacheBytes) })
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
	c := rpc.NewBudgetCodec()
	return grpc.ForceServerCodecV2(c), rpc.WithResponseBudget(b, c)
}
