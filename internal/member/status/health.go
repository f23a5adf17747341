package status

import (
	"context"
	"errors"
	"fmt"

	"github.com/metastore/metastore/internal/lifecycle"
	"github.com/metastore/metastore/internal/storage"
)

// Checkers are the member's gRPC health checks (internal/lifecycle.Health):
// storage answers a read, raft knows a leader, and the member has not
// stopped on a fatal error (failed, e.g. the apply loop's).
func (p Probe) Checkers(eng storage.Reader, failed func() error) []lifecycle.Checker {
	return []lifecycle.Checker{
		lifecycle.CheckerFunc("storage", func(context.Context) error {
			if _, err := eng.Get(storage.KeyAppliedIndex); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("storage read failed: %w", err)
			}
			return nil
		}),
		lifecycle.CheckerFunc("raft", func(context.Context) error {
			if !p.HasLeader() {
				return errors.New("no raft leader")
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
