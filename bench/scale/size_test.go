package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeysAreKubernetesShaped checks the size mode's keys: every kind gets
// its share of each 20 consecutive keys, and keys have the
// /registry/<kind>/<namespace>/<name> shape, all distinct.
func TestKeysAreKubernetesShaped(t *testing.T) {
	counts := map[string]int{}
	seen := map[string]bool{}
	for i := range 2000 {
		k := sizeKey(i)
		parts := strings.Split(k, "/")
		if len(parts) != 5 || parts[0] != "" || parts[1] != "registry" || !strings.HasPrefix(parts[3], "ns-") || !strings.HasPrefix(parts[4], parts[2]+"-") {
			t.Fatalf("key %d = %q, want /registry/<kind>/ns-NNN/<kind>-N", i, k)
		}
		if seen[k] {
			t.Fatalf("key %q twice", k)
		}
		seen[k] = true
		counts[parts[2]]++
	}
	total := 0
	for _, k := range kinds {
		total += k.share
		if want := k.share * 100; counts[k.name] != want {
			t.Errorf("%s: %d of 2000 keys, want %d", k.name, counts[k.name], want)
		}
	}
	if total != 20 {
		t.Errorf("kind shares add up to %d, want 20", total)
	}
}

// TestValuesAreDistinctAndSized: values have the size asked for, sizes
// stay within 1-10 KiB, and no two values are alike (a compressor must not
// flatter the server).
func TestValuesAreDistinctAndSized(t *testing.T) {
	v := newValues()
	rng := rand.New(rand.NewPCG(9, 9))
	seen := map[string]bool{}
	for range 1000 {
		sz := valueSize(rng)
		if sz < 1024 || sz > 10*1024 {
			t.Fatalf("value size %d outside 1-10 KiB", sz)
		}
		val := v.get(rng, 0, sz)
		if len(val) != sz {
			t.Fatalf("value of %d bytes, want %d", len(val), sz)
		}
		if seen[val] {
			t.Fatal("the same value twice")
		}
		seen[val] = true
	}
	// Random bytes: no byte value dominates a value.
	val := v.get(rng, 0, 8192)
	var hist [256]int
	for i := range len(val) {
		hist[val[i]]++
	}
	for b, n := range hist {
		if n > 100 {
			t.Fatalf("byte %d occurs %d times in 8 KiB of random bytes", b, n)
		}
	}
}

// TestDiskKinds: the disk use breakdown names each kind of file with the
// blocks it takes, largest first.
func TestDiskKinds(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int{"000001.sst": 1 << 20, "000002.blob": 3 << 20, "000003.blob": 1 << 20, "000004.log": 2 << 20, "OPTIONS-000005": 100} {
		if err := os.WriteFile(filepath.Join(dir, name), bytes.Repeat([]byte{1}, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := diskKinds(dir), "blob 4 MiB, log 2 MiB, sst 1 MiB, other 0 MiB"; got != want {
		t.Fatalf("diskKinds = %q, want %q", got, want)
	}
}
