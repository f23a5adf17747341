package storage

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"testing"
)

// MVCCPrefixLen is a Pebble comparer's Split over bytewise order, so it
// must keep the comparer's laws (Pebble's Comparer.Split documentation):
// a bare prefix sorts before its longer keys, and comparing (prefix,
// suffix) pairs gives byte order. Checked over every pair of a mixed set of
// the keys the engine holds or is asked to seek to.
func TestMVCCPrefixLenIsAComparerSplit(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	escape := func(u []byte) []byte {
		var out []byte
		for _, c := range u {
			out = append(out, c)
			if c == 0 {
				out = append(out, 0xFF)
			}
		}
		return out
	}
	userKeys := [][]byte{{}, {0}, {0, 1}, {0, 0}, {1}, {0xFF}, []byte("a"), []byte("a\x00"), []byte("a\x00\x01"), []byte("ab"),
		bytes.Repeat([]byte{0}, 20), append(bytes.Repeat([]byte{0xFF}, 17), 0, 1)}
	for i := 0; i < 40; i++ {
		u := make([]byte, rng.Intn(24))
		for j := range u {
			u[j] = []byte{0, 1, 2, 0xFE, 0xFF, 'a', 'b'}[rng.Intn(7)]
		}
		userKeys = append(userKeys, u)
	}
	var keys [][]byte
	for _, u := range userKeys {
		e := append(append([]byte(nil), PrefixMVCCKey...), escape(u)...)
		g := append(append([]byte(nil), e...), 0x00, 0x01)
		// The keys mvcc builds: bounds (escaped key without terminator),
		// groups, group ends, version keys. A group followed by anything
		// but a 16-byte suffix is not a key of the schema.
		succ := AppendMVCCPrefixSuccessor(nil, g)
		keys = append(keys, e, g, append(append([]byte(nil), g[:len(g)-1]...), 0x02), succ)
		for _, rev := range []uint64{0, 1, 2, 1 << 40, ^uint64(0)} {
			k := binary.BigEndian.AppendUint64(append([]byte(nil), g...), ^rev)
			v := binary.BigEndian.AppendUint64(k, ^uint64(rng.Intn(3)))
			keys = append(keys, v)
			if bytes.Compare(v, succ) >= 0 || MVCCPrefixLen(succ) != len(succ) {
				t.Fatalf("successor %x of group %x does not follow its version %x", succ, g, v)
			}
		}
		keys = append(keys, append(append([]byte(nil), PrefixLeaseKeys...), append(make([]byte, 8), u...)...))
		keys = append(keys, append(append([]byte(nil), PrefixMVCCHistory...), append(make([]byte, 16), u...)...))
	}
	keys = append(keys, PrefixEnd(PrefixMVCCKey), RaftEntryKey(7), KeyAppliedIndex, []byte("k"), []byte("k/"), nil)
	split := func(k []byte) ([]byte, []byte) { n := MVCCPrefixLen(k); return k[:n], k[n:] }
	for _, a := range keys {
		pa, sa := split(a)
		if len(sa) > 0 {
			if len(sa) != mvccSuffixLen || bytes.Compare(pa, a) >= 0 {
				t.Fatalf("key %x: prefix %x suffix %x", a, pa, sa)
			}
			if n := MVCCPrefixLen(pa); n != len(pa) {
				t.Fatalf("prefix %x of %x splits again at %d", pa, a, n)
			}
		}
		for _, b := range keys {
			pb, sb := split(b)
			want := bytes.Compare(pa, pb)
			if want == 0 {
				want = bytes.Compare(sa, sb)
			}
			if got := bytes.Compare(a, b); got != want {
				t.Fatalf("Compare(%x, %x) = %d but (prefix, suffix) order gives %d", a, b, got, want)
			}
		}
	}
}
