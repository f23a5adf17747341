package pebble

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/metastore/metastore/internal/storage"
)

// Ingested tables are written with the store's comparer: in a new store
// their filters hold MVCC groups (SeekPrefixGE finds exactly the keys with
// versions), in a store made with the default comparer they hold whole
// keys, and in both the data is there after a reopen.
func TestIngestedTablesUseTheStoresComparer(t *testing.T) {
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprintf("default-comparer=%v", old), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			if old {
				makeDefaultComparerStore(t, dir)
			}
			e, err := Open(dir, testOptions)
			if err != nil {
				t.Fatal(err)
			}
			if e.prefixFilters == old {
				t.Fatalf("prefix filters %v in a store made with the default comparer: %v", e.prefixFilters, old)
			}
			put := func(k string) {
				b := e.NewBatch()
				defer b.Close()
				if err := b.Set([]byte(k), []byte("old")); err != nil {
					t.Fatal(err)
				}
				if err := b.Commit(true); err != nil {
					t.Fatal(err)
				}
			}
			put("k/replaced")
			put("m/kept")
			path := filepath.Join(t.TempDir(), "1.sst")
			w, err := e.NewIngestWriter(path, storage.PrefixMVCCKey)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2000; i += 2 {
				for rev := uint64(2); rev >= 1; rev-- {
					if err := w.Set(versionKey(fmt.Sprintf("key-%05d", i), rev+uint64(i)), []byte("v")); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := w.Finish(storage.PrefixEnd(storage.PrefixMVCCKey)); err != nil {
				t.Fatal(err)
			}
			if err := e.Ingest([]string{path}); err != nil {
				t.Fatal(err)
			}
			checkSeekVersions(t, e)
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			e = openAt(t, dir, testOptions)
			checkSeekVersions(t, e)
			if v, err := e.Get([]byte("m/kept")); err != nil || string(v) != "old" {
				t.Fatalf("key outside the span: %q %v", v, err)
			}
			if _, err := e.Get([]byte("k/replaced")); err == nil {
				t.Fatal("key of the span survived the ingestion")
			}
		})
	}
}
