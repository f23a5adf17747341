package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/logutil"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/version"
	"github.com/metastore/metastore/server"
)

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // the server failed to start, stopped by itself, or did not stop cleanly
	exitUsage  = 2 // bad flags, environment or config file
)

func main() {
	syncProcs(os.Getenv)
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(args, environ []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "snapshot" {
		return runSnapshot(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "migrate" {
		return runMigrate(args[1:], stdout, stderr)
	}
	cfg, err := config.Parse(args, environ)
	switch {
	case errors.Is(err, config.ErrHelp):
		fmt.Fprint(stdout, config.Usage())
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "metastore: %v\n", err)
		return exitUsage
	}
	if cfg.PrintVersion {
		if err := version.Print(stdout); err != nil {
			return exitFailed
		}
		return exitOK
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "metastore: %v\n", err)
		return exitUsage
	}
	lg, err := logutil.New(cfg.LoggerConfig())
	if err != nil {
		fmt.Fprintf(stderr, "metastore: %v\n", err)
		return exitUsage
	}
	defer func() { _ = lg.Sync() }()

	lg.Info("starting metastore",
		zap.String("etcd-version", version.EtcdAPIVersion),
		zap.String("metastore-version", version.Version),
		zap.String("git-sha", version.GitSHA),
		zap.String("data-dir", cfg.Member.DataDir),
		zap.String("storage-engine", cfg.Storage.Engine),
		zap.String("config-file", cfg.ConfigFile),
		// The phase in effect, as etcd's "starting an etcd server" line
		// reports it: always write-only (see config.V2DeprecationDefault).
		zap.String("v2-deprecation", cfg.Cluster.V2Deprecation),
		zap.Int("gomaxprocs", runtime.GOMAXPROCS(0)),
	)
	for _, w := range cfg.Warnings() {
		lg.Warn(w)
	}
	for _, n := range cfg.NoOpSet() {
		lg.Warn("flag has no effect on metastore", zap.String("flag", "--"+n.Flag), zap.String("reason", n.Reason),
			zap.String("source", cfg.SourceOf(n.Flag).String()))
	}
	for _, n := range cfg.Features.WithoutEffect() {
		lg.Warn("feature gate has no effect on metastore", zap.String("flag", "--"+n.Flag), zap.String("reason", n.Reason))
	}
	for _, name := range cfg.UnimplementedSet() {
		lg.Warn("flag is accepted for etcd compatibility but not implemented yet; ignoring it",
			zap.String("flag", "--"+name), zap.String("source", cfg.SourceOf(name).String()))
	}

	// Catch signals before starting, so that one arriving during start-up
	// still leads to a graceful stop rather than the default abrupt exit.
	ctx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stopSignals()

	srv, err := server.New(cfg, lg)
	if err != nil {
		lg.Error("failed to create server", zap.Error(err))
		return exitFailed
	}
	if err := srv.StartContext(ctx); err != nil {
		if ctx.Err() != nil {
			// A signal while the member waited for its cluster: Start
			// released what it opened; this is a requested stop.
			lg.Info("received signal during start-up; stopped", zap.Error(err))
			return exitOK
		}
		lg.Error("failed to start server", zap.Error(err))
		return exitFailed
	}

	select {
	case <-ctx.Done():
		stopSignals() // a second signal now gets the default behaviour: exit at once
		lg.Info("received signal; shutting down gracefully", zap.Duration("shutdown-timeout", cfg.Limits.ShutdownTimeout))
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Limits.ShutdownTimeout)
		defer cancel()
		if err := srv.Stop(sctx); err != nil {
			lg.Error("graceful shutdown failed", zap.Error(err))
			return exitFailed
		}
		lg.Info("metastore stopped")
		return exitOK
	case <-srv.Done():
		if err := srv.Err(); errors.Is(err, membership.ErrRemoved) {
			// Like etcd, a member removed from the cluster stops cleanly.
			lg.Warn("stopping: " + err.Error())
			sctx, cancel := context.WithTimeout(context.Background(), cfg.Limits.ShutdownTimeout)
			defer cancel()
			if err := srv.Stop(sctx); err != nil {
				lg.Error("graceful shutdown failed", zap.Error(err))
			}
			return exitOK
		}
		if err := srv.Err(); err != nil {
			lg.Error("server stopped", zap.Error(err))
			return exitFailed
		}
		lg.Info("server stopped")
		return exitOK
	}
}
