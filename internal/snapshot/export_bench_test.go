package snapshot

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/metastore/metastore/internal/mvcc"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
)

// BenchmarkExport measures the export Maintenance.Snapshot runs, for a store
// of 50 000 keys of 1 KiB on Pebble.
func BenchmarkExport(b *testing.B) {
	eng := benchStore(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		snap := eng.NewSnapshot()
		if err := WriteEtcd(snap, filepath.Join(b.TempDir(), "out.db")); err != nil {
			b.Fatal(err)
		}
		_ = snap.Close()
	}
}

// BenchmarkRestore measures `metastore snapshot restore` of that store's
// export.
func BenchmarkRestore(b *testing.B) {
	eng := benchStore(b)
	file := filepath.Join(b.TempDir(), "snap.db")
	snap := eng.NewSnapshot()
	if err := WriteEtcd(snap, file); err != nil {
		b.Fatal(err)
	}
	_ = snap.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Restore(file, filepath.Join(b.TempDir(), "d"), RestoreOptions{SkipHashCheck: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchStore(b *testing.B) *pebbleengine.Engine {
	eng, err := pebbleengine.Open(filepath.Join(b.TempDir(), "db"), pebbleengine.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = eng.Close() })
	s, err := mvcc.Open(eng, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	val := make([]byte, 1024)
	for i := 0; i < 50; i++ {
		batch := eng.NewBatch()
		w := s.NewWriter(batch)
		for j := 0; j < 1000; j++ {
			tw := w.Begin()
			tw.Put(fmt.Appendf(nil, "key-%08d", (j*7919+i*13)%50000), val, 0)
			tw.End()
		}
		if err := w.Finish(); err != nil {
			b.Fatal(err)
		}
		if err := batch.Commit(false); err != nil {
			b.Fatal(err)
		}
		w.Commit()
		_ = batch.Close()
	}
	return eng
}
