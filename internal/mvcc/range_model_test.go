package mvcc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/memory"
	"github.com/metastore/metastore/internal/storage/pebble"
)

// modelKeys hold 0x00 and 0x01 bytes, so escaping and the order of groups
// (the merge of staged writes with the engine compares groups) are covered.
var modelKeys = []string{"a", "a\x00", "a\x00\x00", "a\x00b", "a\x01", "ab", "b", "b\x00\x01", "c", "c\xff", "d"}

// modelRanges are [key, end) pairs as Range takes them.
var modelRanges = [][2]string{
	{"a", ""}, {"a\x00", ""}, {"zz", ""},
	{"a", "b"}, {"a\x00", "a\x01"}, {"", "\x00"}, {"b", "\x00"}, {"a", "z"}, {"c", "c\x00"}, {"d", "a"},
}

type modelKV struct {
	create, mod, ver int64
	value            string
}

type modelState map[string]modelKV

func (m modelState) clone() modelState {
	c := make(modelState, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// modelRange is what Range must return over state m: the keys in range, in
// order.
func modelRange(m modelState, key, end string) []string {
	var out []string
	for k := range m {
		if inRange([]byte(k), []byte(key), []byte(end)) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// checkRanges compares every model range, with several limits and options,
// against rangeFn at revision rev (0: current) over state m.
func checkRanges(t *testing.T, what string, rangeFn func(key, end []byte, ro RangeOptions) (*RangeResult, error), rev int64, m modelState) {
	t.Helper()
	for _, r := range modelRanges {
		want := modelRange(m, r[0], r[1])
		for _, limit := range []int64{0, 1, 3} {
			for _, opt := range []string{"", "keys", "count", "nototal"} {
				ro := RangeOptions{Rev: rev, Limit: limit, KeysOnly: opt == "keys", Count: opt == "count", NoTotal: opt == "nototal"}
				res, err := rangeFn([]byte(r[0]), []byte(r[1]), ro)
				if err != nil {
					t.Fatalf("%s: range %q %+v: %v", what, r, ro, err)
				}
				n := len(want)
				if limit > 0 && int64(n) > limit {
					n = int(limit)
				}
				if opt == "count" {
					n = 0
				}
				wantCount := len(want)
				if opt == "nototal" {
					wantCount = n
				}
				if res.Count != wantCount || len(res.KVs) != n {
					t.Fatalf("%s: range %q %+v: count %d kvs %d, want %d and %d", what, r, ro, res.Count, len(res.KVs), wantCount, n)
				}
				for i, kv := range res.KVs {
					w := m[want[i]]
					wantVal := w.value
					if opt == "keys" {
						wantVal = ""
					}
					if string(kv.Key) != want[i] || string(kv.Value) != wantVal || kv.ModRevision != w.mod || kv.CreateRevision != w.create || kv.Version != w.ver {
						t.Fatalf("%s: range %q %+v: kv %d is %v, want %q %+v", what, r, ro, i, kv, want[i], w)
					}
				}
			}
		}
	}
}

// TestRangeMatchesModel runs a deterministic random history of puts and
// deletes and checks counts, limits and contents of ranges at every
// revision, after compaction, and inside a write txn (staged writes merged
// with the engine) against a simple model.
func TestRangeMatchesModel(t *testing.T) {
	engines := map[string]func(t *testing.T) storage.Engine{
		"memory": func(t *testing.T) storage.Engine { return memory.New() },
		"pebble": func(t *testing.T) storage.Engine {
			e, err := pebble.Open(t.TempDir(), pebble.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			return e
		},
	}
	for name, open := range engines {
		t.Run(name, func(t *testing.T) {
			eng := open(t)
			t.Cleanup(func() { _ = eng.Close() })
			s := openStore(t, eng)
			rng := rand.New(rand.NewPCG(7, 11))
			states := map[int64]modelState{s.Rev(): {}}
			cur := modelState{}
			// stageOps applies 1-3 random ops to tw and to m.
			stageOps := func(tw *TxnWrite, m modelState) {
				for range 1 + rng.IntN(3) {
					k := modelKeys[rng.IntN(len(modelKeys))]
					rev := tw.w.rev + 1
					switch rng.IntN(5) {
					case 0: // delete one key
						if tw.DeleteRange([]byte(k), nil) != nil {
							delete(m, k)
						}
					case 1: // delete a range
						end := modelKeys[rng.IntN(len(modelKeys))]
						for _, d := range modelRange(m, k, end) {
							delete(m, d)
						}
						tw.DeleteRange([]byte(k), []byte(end))
					default:
						v := fmt.Sprintf("v%d", rng.IntN(1000))
						tw.Put([]byte(k), []byte(v), 0)
						kv, ok := m[k]
						if !ok {
							kv = modelKV{create: rev}
						}
						kv.mod, kv.ver, kv.value = rev, kv.ver+1, v
						m[k] = kv
					}
				}
			}
			for range 80 {
				apply(t, s, func(tw *TxnWrite) { stageOps(tw, cur) })
				states[s.Rev()] = cur.clone()
			}
			last := s.Rev()
			checkAll := func(from int64) {
				t.Helper()
				for rev := from; rev <= last; rev++ {
					m, ok := states[rev]
					if !ok {
						continue // an op-less txn: no revision
					}
					checkRanges(t, fmt.Sprintf("rev %d", rev), func(key, end []byte, ro RangeOptions) (*RangeResult, error) {
						return s.Range(ctx, key, end, ro)
					}, rev, m)
				}
				checkRanges(t, "current", func(key, end []byte, ro RangeOptions) (*RangeResult, error) {
					return s.Range(ctx, key, end, ro)
				}, 0, cur)
			}
			checkAll(1)
			compactAt := last / 2
			waitDone(t, compact(t, s, compactAt))
			checkAll(compactAt)
			if _, err := s.Range(ctx, []byte("a"), []byte("\x00"), RangeOptions{Rev: compactAt - 1, Limit: 1}); !errors.Is(err, ErrCompacted) {
				t.Fatalf("range below compaction: %v", err)
			}
			// Staged writes in a txn merge with the engine.
			for range 20 {
				apply(t, s, func(tw *TxnWrite) {
					stageOps(tw, cur)
					stageOps(tw, cur)
					checkRanges(t, "in txn", func(key, end []byte, ro RangeOptions) (*RangeResult, error) {
						ro.Rev = 0
						return tw.Range(ctx, key, end, ro)
					}, 0, cur)
				})
			}
		})
	}
}

// TestRangeCountStopsOnCancel: counting past the limit still notices a
// cancelled request, so a count over millions of keys cannot outlive it.
func TestRangeCountStopsOnCancel(t *testing.T) {
	s, _ := newStore(t)
	apply(t, s, func(tw *TxnWrite) {
		for i := range 3 * ctxCheckEvery {
			tw.Put([]byte(fmt.Sprintf("k%05d", i)), []byte("v"), 0)
		}
	})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for _, ro := range []RangeOptions{{Limit: 1}, {Count: true}, {}} {
		if _, err := s.Range(cctx, []byte("k"), []byte("l"), ro); !errors.Is(err, context.Canceled) {
			t.Fatalf("%+v: err %v, want context.Canceled", ro, err)
		}
		res, err := s.Range(ctx, []byte("k"), []byte("l"), ro)
		if err != nil || res.Count != 3*ctxCheckEvery {
			t.Fatalf("%+v: count %v err %v", ro, res, err)
		}
	}
}
