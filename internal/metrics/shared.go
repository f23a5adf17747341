package metrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// PanicTotalName is the name of the counter of recovered panics. The
// middleware (where="grpc") and the lifecycle supervisor (where=goroutine
// name) both count into it.
const PanicTotalName = "metastore_panic_total"

// NewPanicCounter returns the metastore_panic_total{where} counter registered
// on reg. Several packages need the same counter and the server hands each of
// them the same registry, so an identical collector already registered there
// is reused instead of failing. A nil reg yields an unregistered counter.
func NewPanicCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: PanicTotalName,
		Help: "The total number of panics recovered, by where they happened (grpc or a goroutine name).",
	}, []string{"where"})
	got, err := RegisterOrReuse(reg, c)
	if err != nil {
		return nil, err
	}
	return got.(*prometheus.CounterVec), nil
}

// RegisterOrReuse registers c on reg and returns it, or returns the identical
// collector that is already registered there. A nil reg registers nothing.
func RegisterOrReuse(reg prometheus.Registerer, c prometheus.Collector) (prometheus.Collector, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector, nil
		}
		return nil, fmt.Errorf("register collector: %w", err)
	}
	return c, nil
}

// RegisterAll registers every collector on reg (nil reg: none) and stops at
// the first failure.
func RegisterAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register collector: %w", err)
		}
	}
	return nil
}
