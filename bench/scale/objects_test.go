package main

import (
	"math/rand/v2"
	"testing"

	"github.com/golang/snappy"
)

// TestObjectsCompressLikeKubernetesObjects: the object-shaped values are
// sized and distinct like the random ones, and Snappy (Pebble's block
// compressor) shrinks them about as much as it shrinks protobuf-encoded
// Kubernetes objects, by 1.5-3x overall, secrets' random data hardly at
// all: enough to show what compression does for a store, not so much that
// it flatters one.
func TestObjectsCompressLikeKubernetesObjects(t *testing.T) {
	o := &objects{rand: newValues()}
	rng := rand.New(rand.NewPCG(3, 4))
	seen := map[string]bool{}
	raw := map[string]int{}
	packed := map[string]int{}
	var block []byte
	var total, totalPacked int
	flush := func() {
		total += len(block)
		totalPacked += len(snappy.Encode(nil, block))
		block = block[:0]
	}
	for i := range 4000 {
		sz := valueSize(rng)
		val := o.get(rng, i, sz)
		if len(val) != sz {
			t.Fatalf("value of %d bytes, want %d", len(val), sz)
		}
		if seen[val] {
			t.Fatal("the same value twice")
		}
		seen[val] = true
		k := kindOf(i)
		raw[k] += sz
		packed[k] += len(snappy.Encode(nil, []byte(val)))
		// Pebble compresses blocks of 32 KiB of values, several values
		// of a key range together.
		block = append(block, val...)
		if len(block) >= 32<<10 {
			flush()
		}
	}
	flush()
	for _, k := range kinds {
		t.Logf("%-12s each value alone: %.2fx", k.name, float64(raw[k.name])/float64(packed[k.name]))
	}
	ratio := float64(total) / float64(totalPacked)
	t.Logf("all, 32 KiB blocks: %.2fx", ratio)
	if ratio < 1.5 || ratio > 3 {
		t.Fatalf("Snappy shrinks the values %.2fx, want 1.5-3x", ratio)
	}
	if s := float64(raw["secrets"]) / float64(packed["secrets"]); s > 1.5 {
		t.Fatalf("secrets' random data shrinks %.2fx, want at most 1.5x", s)
	}
}
