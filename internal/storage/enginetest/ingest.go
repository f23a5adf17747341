package enginetest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/metastore/metastore/internal/storage"
)

// ingestFile writes an ingest file replacing [start, end) by pairs.
func ingestFile(t *testing.T, e storage.Engine, path, start, end string, pairs ...kv) string {
	t.Helper()
	w, err := e.NewIngestWriter(path, []byte(start))
	if err != nil {
		t.Fatalf("new ingest writer: %v", err)
	}
	for _, p := range pairs {
		if err := w.Set([]byte(p.k), []byte(p.v)); err != nil {
			t.Fatalf("ingest set %q: %v", p.k, err)
		}
	}
	if err := w.Finish([]byte(end)); err != nil {
		t.Fatalf("ingest finish: %v", err)
	}
	return path
}

// testIngest checks that ingested files replace their spans atomically,
// leave the rest and the files alone, can be ingested again, order below
// later writes, and that misuse is refused without effect.
func testIngest(t *testing.T, s Suite) {
	e := s.Open(t)
	dir := t.TempDir()
	put(t, e, kv{"a/1", "a"}, kv{"b/", "b0"}, kv{"b/1", "b1"}, kv{"b/2", "b2"}, kv{"c/1", "c"}, kv{"d/1", "d"}, kv{"e/1", "e"})
	before := e.NewSnapshot()
	defer before.Close()
	f1 := ingestFile(t, e, filepath.Join(dir, "1"), "b/", "b0", kv{"b/2", "new"}, kv{"b/3", "x"})
	f2 := ingestFile(t, e, filepath.Join(dir, "2"), "d/", "d0") // no pair: only deletes
	f3 := ingestFile(t, e, filepath.Join(dir, "3"), "e/", "e/1", kv{"e/", "first"})
	if err := e.Ingest([]string{f2, f1, f3}); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	after := []kv{{"a/1", "a"}, {"b/2", "new"}, {"b/3", "x"}, {"c/1", "c"}, {"e/", "first"}, {"e/1", "e"}}
	wantScan(t, e, nil, nil, after...)
	mustMiss(t, e, "b/1")
	mustMiss(t, e, "d/1")
	wantScan(t, before, nil, nil, kv{"a/1", "a"}, kv{"b/", "b0"}, kv{"b/1", "b1"}, kv{"b/2", "b2"}, kv{"c/1", "c"}, kv{"d/1", "d"}, kv{"e/1", "e"})
	for _, f := range []string{f1, f2, f3} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("ingested file not left in place: %v", err)
		}
	}

	// Later writes order above the ingested pairs.
	put(t, e, kv{"b/2", "newer"}, kv{"d/2", "later"})
	mustGet(t, e, "b/2", "newer")
	// Ingesting again replaces the spans again: the same state as the
	// first time, whatever was written in between.
	if err := e.Ingest([]string{f1, f2, f3}); err != nil {
		t.Fatalf("ingest again: %v", err)
	}
	wantScan(t, e, nil, nil, after...)

	// Misuse fails and changes nothing.
	if _, err := e.NewIngestWriter(f1, []byte("x/")); err == nil {
		t.Fatal("ingest writer over an existing file")
	}
	if _, err := e.NewIngestWriter(filepath.Join(dir, "empty"), nil); err == nil {
		t.Fatal("ingest writer with an empty start")
	}
	w, err := e.NewIngestWriter(filepath.Join(dir, "bad"), []byte("f/"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Set([]byte("a/"), []byte("x")); err == nil {
		t.Fatal("set before the span's start")
	}
	if err := w.Set([]byte("f/2"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"f/2", "f/1"} {
		if err := w.Set([]byte(k), []byte("x")); err == nil {
			t.Fatalf("set %q after f/2", k)
		}
	}
	if err := w.Finish([]byte("f/2")); err == nil {
		t.Fatal("finish with an end not above the keys")
	}
	if _, err := os.Stat(filepath.Join(dir, "bad")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed finish left the file: %v", err)
	}
	w, err = e.NewIngestWriter(filepath.Join(dir, "aborted"), []byte("f/"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Set([]byte("f/1"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "aborted")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an aborted file is left: %v", err)
	}
	over := ingestFile(t, e, filepath.Join(dir, "over"), "b/", "c/", kv{"b/9", "x"})
	if err := e.Ingest([]string{f1, over}); err == nil {
		t.Fatal("ingest of overlapping spans")
	}
	if err := e.Ingest([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("ingest of a missing file")
	}
	wantScan(t, e, nil, nil, after...)

	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.NewIngestWriter(filepath.Join(dir, "closed"), []byte("a/")); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("ingest writer on a closed engine: %v", err)
	}
	if err := e.Ingest([]string{f1}); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("ingest on a closed engine: %v", err)
	}
}
