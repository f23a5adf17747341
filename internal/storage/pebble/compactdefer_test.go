package pebble

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// blobFiles lists the blob files in dir.
func blobFiles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.blob"))
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[filepath.Base(n)] = true
	}
	return m
}

// TestDeferValueRewritesCarriesBlobReferences: a compaction whose inputs'
// blob reference depth exceeds the policy's limit rewrites their values
// into new blob files; while DeferValueRewrites is held it carries the
// references over and writes no blob file. The depth is built in two
// rounds of flushes (L0 stalls writes before it has more sublevels than
// valueSepMaxRefDepth): the first round is compacted into one table of
// that depth, the second round's sublevels add theirs on top.
func TestDeferValueRewritesCarriesBlobReferences(t *testing.T) {
	const perRound = valueSepMaxRefDepth/2 + 1
	for _, held := range []bool{false, true} {
		t.Run(fmt.Sprint("held=", held), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			opts := testOptions
			opts.manualCompactionsOnly = true
			e := openAt(t, dir, opts)
			rev := 0
			round := func() {
				t.Helper()
				for range perRound {
					rev++
					b := e.NewBatch()
					for i := range 4 {
						if err := b.Set(versionKey(fmt.Sprintf("key%d", i), uint64(rev)), bigValue(rev*4+i)); err != nil {
							t.Fatal(err)
						}
					}
					if err := b.Commit(false); err != nil {
						t.Fatal(err)
					}
					_ = b.Close()
					if err := e.db.Flush(); err != nil {
						t.Fatal(err)
					}
				}
			}
			compact := func() {
				t.Helper()
				if err := e.db.Compact(context.Background(), []byte("k/"), []byte("k0"), false); err != nil {
					t.Fatal(err)
				}
			}
			round()
			before := blobFiles(t, dir)
			compact() // depth perRound <= the limit: references carried over
			if after := blobFiles(t, dir); len(after) != len(before) {
				t.Fatalf("%d blob files before the first compaction, %d after", len(before), len(after))
			}
			round()
			before = blobFiles(t, dir)
			if held {
				defer e.DeferValueRewrites()()
			}
			compact() // depth 2*perRound > the limit
			var written []string
			for n := range blobFiles(t, dir) {
				if !before[n] {
					written = append(written, n)
				}
			}
			if held && len(written) != 0 {
				t.Fatalf("the compaction wrote blob files %v while rewrites were deferred", written)
			}
			if !held && len(written) == 0 {
				t.Fatal("the compaction of inputs deeper than the limit wrote no blob file")
			}
			for i := range 4 { // the newest values read back either way
				if v, err := e.Get(versionKey(fmt.Sprintf("key%d", i), uint64(rev))); err != nil || !bytes.Equal(v, bigValue(rev*4+i)) {
					t.Fatalf("key%d: %d bytes, %v", i, len(v), err)
				}
			}
		})
	}
}

// TestDeferValueRewritesPolicy: held, the depth limit is ten times the
// policy's, and back after the last release; CompactAll's "rewrite
// everything" (depth 0) stays as it is.
func TestDeferValueRewritesPolicy(t *testing.T) {
	vs := new(valueSep)
	depth := func() int { return vs.policy().MaxBlobReferenceDepth }
	if got := depth(); got != valueSepMaxRefDepth {
		t.Fatalf("depth %d before any holder, want %d", got, valueSepMaxRefDepth)
	}
	r1, r2 := vs.deferRewrites(), vs.deferRewrites()
	if got := depth(); got != 10*valueSepMaxRefDepth {
		t.Fatalf("depth %d while held, want %d", got, 10*valueSepMaxRefDepth)
	}
	vs.rewriting.Add(1) // a CompactAll runs
	if got := depth(); got != 0 {
		t.Fatalf("depth %d during a CompactAll while held, want 0", got)
	}
	vs.rewriting.Add(-1)
	r1()
	r1() // a second call of the same release does not end the other holder's
	if got := depth(); got != 10*valueSepMaxRefDepth {
		t.Fatalf("depth %d while one holder remains, want %d", got, 10*valueSepMaxRefDepth)
	}
	r2()
	if got := depth(); got != valueSepMaxRefDepth {
		t.Fatalf("depth %d after every release, want %d", got, valueSepMaxRefDepth)
	}
}
