package memsize

import (
	"runtime/debug"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
)

func TestSetGoMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	noEnv := func(string) (string, bool) { return "", false }
	operator := func(k string) (string, bool) { return "1GiB", k == "GOMEMLIMIT" }
	if SetGoMemoryLimit(0, noEnv) || SetGoMemoryLimit(1<<30, operator) {
		t.Fatal("limit set without a flag, or over the operator's GOMEMLIMIT")
	}
	if debug.SetMemoryLimit(-1) != old {
		t.Fatal("limit changed")
	}
	if !SetGoMemoryLimit(3<<30, noEnv) || debug.SetMemoryLimit(-1) != 3<<30 {
		t.Fatalf("limit %d, want %d", debug.SetMemoryLimit(-1), 3<<30)
	}
}

func TestApplyExportsTheSizes(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	l := config.LimitsConfig{StorageBlockCacheBytes: 8 << 20, StorageMemtableBytes: 4 << 20, StorageKeyCacheBytes: 2 << 20}
	reg := prometheus.NewRegistry()
	opt, kvOpt := Apply(l, reg, zap.NewNop())
	if opt == nil || kvOpt == nil {
		t.Fatal("no options")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	if len(got) != 10 || got["metastore_storage_block_cache_bytes"] != 8<<20 || got["metastore_storage_memtable_bytes"] != 4<<20 ||
		got["metastore_storage_key_cache_limit_bytes"] != 2<<20 ||
		got["metastore_range_bytes_in_flight_limit"] != float64(l.RangeBudget()) {
		t.Fatalf("metrics %v", got)
	}
	o := PebbleSizes(l, pebbleengine.Options{WALDir: "w"})
	if o.CacheSize != 8<<20 || o.MemTableSize != 4<<20 || o.WALDir != "w" {
		t.Fatalf("pebble options %+v", o)
	}
}
