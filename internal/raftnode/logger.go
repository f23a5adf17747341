package raftnode

import (
	"fmt"

	"go.uber.org/zap"
)

// raftLogger adapts zap to raft.Logger. raft's Info lines (elections, term
// changes) are what an operator reads after an incident, so they stay at info.
type raftLogger struct{ s *zap.SugaredLogger }

func (l raftLogger) Debug(v ...any)                 { l.s.Debug(v...) }
func (l raftLogger) Debugf(format string, v ...any) { l.s.Debugf(format, v...) }
func (l raftLogger) Error(v ...any)                 { l.s.Error(v...) }
func (l raftLogger) Errorf(format string, v ...any) { l.s.Errorf(format, v...) }
func (l raftLogger) Info(v ...any)                  { l.s.Info(v...) }
func (l raftLogger) Infof(format string, v ...any)  { l.s.Infof(format, v...) }
func (l raftLogger) Warning(v ...any)               { l.s.Warn(v...) }
func (l raftLogger) Warningf(format string, v ...any) {
	l.s.Warnf(format, v...)
}
func (l raftLogger) Fatal(v ...any)                 { l.s.Error(v...); panic(fmt.Sprint(v...)) }
func (l raftLogger) Fatalf(format string, v ...any) { l.Fatal(fmt.Sprintf(format, v...)) }
func (l raftLogger) Panic(v ...any)                 { l.s.Panic(v...) }
func (l raftLogger) Panicf(format string, v ...any) { l.s.Panicf(format, v...) }
