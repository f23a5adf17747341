package mvcctest

import (
	"errors"
	"testing"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/storage"
)

// Open opens a store on eng and registers, in t.Cleanup, Check followed by
// its Close. Register eng's Close before calling Open, so the check runs
// while eng is open; lg may be nil.
func Open(t testing.TB, eng storage.Engine, lg *zap.Logger, opts ...mvcc.Option) *mvcc.Store {
	t.Helper()
	s, err := mvcc.Open(eng, lg, opts...)
	if err != nil {
		t.Fatalf("mvcc: open: %v", err)
	}
	t.Cleanup(func() {
		Check(t, s)
		_ = s.Close()
	})
	return s
}

// Check fails t if s is inconsistent. A store whose engine the test already
// closed (to reopen it) is not checked: the store reopened on it is.
func Check(t testing.TB, s *mvcc.Store) {
	t.Helper()
	if err := s.CheckInvariants(); err != nil && !errors.Is(err, storage.ErrClosed) {
		t.Error(err)
	}
}
