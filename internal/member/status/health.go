package status

import (
	"context"
	"errors"
	"fmt"

	"github.com/metastore/metastore/internal/lifecycle"
	"github.com/metastore/metastore/internal/storage"
)

// Checkers are the member's gRPC health checks (internal/lifecycle.Health):
// storage answers a read, and the member has not stopped on a fatal error
// (failed: the Raft or apply loop's, or removal from the cluster), either
// of which makes etcd exit.
//
// Whether the member knows a leader is deliberately not one of them. etcd
// v3.7.3 reports SERVING on its gRPC health service for as long as it
// serves (NOT_SERVING only while shutting down, and during a defrag with
// StopGRPCServiceOnDefrag), and a member without a leader still serves
// serializable reads, watches and Status. A leader check also lagged the
// leader's return by up to the evaluation interval, and etcd's own
// robustness suite, which requires SERVING from every member right after
// each fault, failed on it (docs/robustness.md). The HTTP /health endpoint
// still reports "RAFT NO LEADER", as etcd's does.
func (p Probe) Checkers(eng storage.Reader, failed func() error) []lifecycle.Checker {
	return []lifecycle.Checker{
		lifecycle.CheckerFunc("storage", func(context.Context) error {
			if _, err := eng.Get(storage.KeyAppliedIndex); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("storage read failed: %w", err)
			}
			return nil
		}),
		lifecycle.CheckerFunc("apply", func(context.Context) error {
			if err := failed(); err != nil {
				return fmt.Errorf("apply stopped: %w", err)
			}
			return nil
		}),
	}
}
