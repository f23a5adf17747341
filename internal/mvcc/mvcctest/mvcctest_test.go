package mvcctest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
)

// recorder is a testing.TB that records errors instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Error(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }

func TestCheckFailsTheTestOnACorruptStore(t *testing.T) {
	eng := memory.New()
	t.Cleanup(func() { _ = eng.Close() })
	s := Open(t, eng, nil)
	b := eng.NewBatch()
	defer b.Close()
	w := s.NewWriter(b)
	tw := w.Begin()
	tw.Put([]byte("k"), []byte("v"), 0)
	tw.End()
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	w.Commit()

	r := &recorder{TB: t}
	Check(r, s)
	if len(r.errs) != 0 {
		t.Fatalf("consistent store: %v", r.errs)
	}

	// Drop the history record of revision 2 behind the store's back, then
	// put it back so that the cleanup's own check passes.
	hk := append(append([]byte(nil), storage.PrefixMVCCHistory...), 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0)
	hv, err := eng.Get(hk)
	if err != nil {
		t.Fatal(err)
	}
	write := func(fn func(b storage.Batch) error) {
		b := eng.NewBatch()
		defer b.Close()
		if err := fn(b); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
	}
	write(func(b storage.Batch) error { return b.Delete(hk) })
	Check(r, s)
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "has no history record") {
		t.Fatalf("corrupt store: errors %q", r.errs)
	}
	write(func(b storage.Batch) error { return b.Set(hk, hv) })
}
