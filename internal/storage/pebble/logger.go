package pebble

import (
	"fmt"
	"os"

	"go.uber.org/zap"
)

// pebbleLogger adapts zap to pebble.Logger. Pebble's Infof chatter goes to
// Debug so that it never floods an operator's log; Errorf is a real problem
// (a background compaction or flush failed) and is logged as such.
type pebbleLogger struct {
	l *zap.Logger // nil: quiet
}

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l != nil && p.l.Core().Enabled(zap.DebugLevel) {
		p.l.Debug(fmt.Sprintf(format, args...))
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	if p.l != nil {
		p.l.Error(fmt.Sprintf(format, args...))
	}
}

// Fatalf is called by Pebble when continuing could lose or corrupt data (a
// failed WAL fsync, a corrupt table, a broken invariant). Pebble assumes
// Fatalf does not return, so this one exits the process even when logging is
// otherwise off: a store that silently continues after a failed fsync breaks
// the promise that acknowledged writes survive.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.l != nil {
		p.l.Fatal("pebble: fatal error", zap.String("error", msg))
	}
	fmt.Fprintf(os.Stderr, "pebble: fatal error: %s\n", msg)
	os.Exit(1)
}
