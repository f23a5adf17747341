package logutil

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"
)

// Output names with a special meaning in --log-outputs; anything else is a
// file path.
const (
	OutputDefault = "default"
	OutputStderr  = "stderr"
	OutputStdout  = "stdout"
	// OutputJournal is accepted for etcd compatibility; metastore does not
	// speak the journald protocol and writes to stderr instead (which systemd
	// forwards to the journal anyway).
	OutputJournal = "systemd/journal"
	// outputDiscard silences the logger entirely, as in etcd.
	outputDiscard = "/dev/null"
)

// Levels lists the accepted --log-level values.
var levels = []string{"debug", "info", "warn", "error", "panic", "fatal"}

// LogConfig is the logging part of the server configuration.
type LogConfig struct {
	// Name is the member name, added as field "name" to every line.
	Name string
	// Logger must be "zap" (etcd removed "capnslog" in v3.5).
	Logger string
	// Level is one of debug, info, warn, error, panic, fatal ("" = info).
	Level string
	// Format is json or console ("" = json).
	Format string
	// Outputs are "default", "stderr", "stdout", "systemd/journal" or file
	// paths (empty = default).
	Outputs []string
	// Rotate (--enable-log-rotation) rotates the one file among Outputs
	// with lumberjack, configured by RotationJSON
	// (--log-rotation-config-json), as etcd does.
	Rotate       bool
	RotationJSON string
}

// Validate checks the settings without opening anything. Messages name the
// flag at fault.
func (c LogConfig) Validate() error {
	switch c.Logger {
	case "zap", "":
	case "capnslog":
		return errors.New("--logger=capnslog is removed in v3.5")
	default:
		return fmt.Errorf("invalid value %q for flag --logger: only 'zap' is supported", c.Logger)
	}
	if c.Level != "" && !slices.Contains(levels, c.Level) {
		return fmt.Errorf("invalid value %q for flag --log-level: must be one of debug, info, warn, error, panic, fatal", c.Level)
	}
	switch c.Format {
	case "", "json", "console":
	default:
		return fmt.Errorf("invalid value %q for flag --log-format: unknown log format: %s, supported values json, console", c.Format, c.Format)
	}
	if len(c.Outputs) > 1 && slices.Contains(c.Outputs, OutputDefault) {
		return fmt.Errorf("invalid value %q for flag --log-outputs: multi logoutput for %q is not supported yet", c.Outputs, OutputDefault)
	}
	for _, o := range c.Outputs {
		if o == "" {
			return errors.New("invalid value for flag --log-outputs: empty output")
		}
	}
	if c.Rotate {
		if _, _, err := c.rotation(); err != nil {
			return err
		}
	}
	return nil
}

// EncoderConfig is etcd's encoder configuration (zap's production settings
// with etcd's timestamp layout).
func EncoderConfig() zapcore.EncoderConfig {
	return zapcore.EncoderConfig{
		TimeKey:       "ts",
		LevelKey:      "level",
		NameKey:       "logger",
		CallerKey:     "caller",
		MessageKey:    "msg",
		StacktraceKey: "stacktrace",
		LineEnding:    zapcore.DefaultLineEnding,
		EncodeLevel:   zapcore.LowercaseLevelEncoder,
		EncodeTime: func(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
			enc.AppendString(t.Format("2006-01-02T15:04:05.000000Z0700"))
		},
		EncodeDuration: zapcore.StringDurationEncoder,
		EncodeCaller:   zapcore.ShortCallerEncoder,
	}
}

// New builds the logger. File outputs are opened (created if missing) for
// appending.
func New(c LogConfig) (*zap.Logger, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var lvl zapcore.Level
	level := c.Level
	if level == "" {
		level = "info"
	}
	if err := lvl.Set(level); err != nil {
		return nil, fmt.Errorf("invalid value %q for flag --log-level: %w", c.Level, err)
	}
	format := c.Format
	if format == "" {
		format = "json"
	}
	paths := outputPaths(c.Outputs)
	var rotated *lumberjack.Logger
	if c.Rotate {
		file, lj, err := c.rotation()
		if err != nil {
			return nil, err
		}
		if i := slices.Index(paths, file); lj != nil && i >= 0 {
			paths = slices.Delete(paths, i, i+1)
			rotated = lj
		}
	}
	zc := zap.Config{
		Level:       zap.NewAtomicLevelAt(lvl),
		Development: false,
		// etcd samples too: at most 100 identical messages per second, then
		// every 100th.
		Sampling:         &zap.SamplingConfig{Initial: 100, Thereafter: 100},
		Encoding:         format,
		EncoderConfig:    EncoderConfig(),
		OutputPaths:      paths,
		ErrorOutputPaths: paths,
	}
	var opts []zap.Option
	if rotated != nil {
		// The rotated file gets its own core with the same encoder, level
		// and sampling, instead of a sink registered in zap's global
		// registry as etcd does.
		core := zapcore.NewCore(newEncoder(format), zapcore.AddSync(rotated), zc.Level)
		core = zapcore.NewSamplerWithOptions(core, time.Second, zc.Sampling.Initial, zc.Sampling.Thereafter)
		opts = append(opts, zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, core) }))
	}
	lg, err := zc.Build(opts...)
	if err != nil {
		return nil, fmt.Errorf("open --log-outputs %q: %w", c.Outputs, err)
	}
	return lg.With(zap.String("name", c.Name)), nil
}

// outputPaths maps etcd's output names to zap sink URLs, removes duplicates
// and lets /dev/null win, as etcd does.
func outputPaths(outputs []string) []string {
	if len(outputs) == 0 {
		outputs = []string{OutputDefault}
	}
	var paths []string
	for _, o := range outputs {
		p := o
		switch o {
		case OutputDefault, OutputStderr, OutputJournal:
			p = OutputStderr
		case OutputStdout:
			p = OutputStdout
		case outputDiscard:
			return []string{outputDiscard}
		}
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	return paths
}
