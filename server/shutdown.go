package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/metastore/metastore/internal/lifecycle"
	"github.com/metastore/metastore/internal/listen"
)

// registerShutdown registers what Stop does, phase by phase: each hook
// releases one component Start created, in the reverse order of need.
func (s *Server) registerShutdown() {
	if s.rel == nil {
		s.rel = &reliability{}
	}
	if s.rel.shutdown != nil {
		return
	}
	sd := lifecycle.NewShutdown(s.lg.Named("shutdown"), lifecycle.WithShutdownTimeout(s.cfg.Limits.ShutdownTimeout))
	s.rel.shutdown = sd
	sd.RegisterHook(lifecycle.PhaseStopAccepting, "health-not-serving", func(context.Context) error {
		if s.rel.health != nil {
			s.rel.health.SetNotServing()
		}
		return nil
	})
	sd.RegisterHook(lifecycle.PhaseStopAccepting, "close-listeners", func(context.Context) error {
		for _, l := range s.listeners {
			_ = l.Close()
		}
		return nil
	})
	sd.RegisterHook(lifecycle.PhaseDrain, "grpc", func(ctx context.Context) error {
		if s.grpcSrv == nil {
			return nil
		}
		return lifecycle.DrainGRPC(ctx, s.grpcSrv, func() int64 { return s.rel.limiter.Stats().CurrentRequests })
	})
	sd.RegisterHook(lifecycle.PhaseDrain, "http", func(ctx context.Context) error {
		var errs []error
		for _, hs := range s.httpSrvs {
			// The listeners were closed in the first phase; Shutdown closing
			// them again is not a failure.
			if err := hs.Shutdown(ctx); err != nil && !listen.IsClosed(err) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
	sd.RegisterHook(lifecycle.PhaseDrain, "self-clients", func(context.Context) error {
		var errs []error
		if s.self != nil {
			errs = append(errs, s.self.Close())
		}
		if s.gateway != nil {
			errs = append(errs, s.gateway.Close())
		}
		return errors.Join(errs...)
	})
	sd.RegisterHook(lifecycle.PhasePersist, "raft-and-apply", func(ctx context.Context) error {
		if s.node != nil {
			// A leader that stops hands leadership to a follower first, so
			// the cluster does not sit out an election timeout (ADR 12).
			if s.leadership != nil {
				s.leadership.HandOff(ctx)
			}
			s.node.Stop()
			<-s.applyDone
		}
		if s.ticker != nil {
			s.ticker.Stop()
		}
		if s.eng != nil {
			if err := s.eng.Sync(); err != nil {
				return fmt.Errorf("sync storage: %w", err)
			}
		}
		return nil
	})
	sd.RegisterHook(lifecycle.PhaseClose, "peers", func(ctx context.Context) error {
		// Peer traffic is needed until raft stops, so the transport closes last.
		for _, hs := range s.peerSrvs {
			_ = hs.Close()
		}
		for _, l := range s.peerLns { // bound, never served: the start failed
			_ = l.Close()
		}
		if s.transport != nil {
			s.transport.Stop()
		}
		return nil
	})
	sd.RegisterHook(lifecycle.PhaseClose, "tracing", s.closeTracing)
	sd.RegisterHook(lifecycle.PhaseClose, "storage", func(context.Context) error {
		if s.rel.supervisor != nil {
			s.rel.supervisor.Stop()
		}
		if s.hub != nil {
			s.hub.Close() // its catch-up reads the store
		}
		if s.store != nil {
			s.store.Close() // background compaction must stop before the engine closes
		}
		if s.eng != nil {
			if err := s.eng.Close(); err != nil {
				return fmt.Errorf("close storage: %w", err)
			}
		}
		return nil
	})
}
