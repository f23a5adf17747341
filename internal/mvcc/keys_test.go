package mvcc

import (
	"bytes"
	"testing"
)

// FuzzKeyEncoding: escaping round-trips, preserves byte order, and the range
// bounds contain exactly the keys the user-key range does.
func FuzzKeyEncoding(f *testing.F) {
	f.Add([]byte("a"), []byte("b"), []byte("c"))
	f.Add([]byte("a\x00"), []byte("a"), []byte("a\x00\x01"))
	f.Add([]byte("\x00"), []byte("\x00\xff"), []byte("\x00"))
	f.Add([]byte(""), []byte("\xff"), []byte("\x00\x01"))
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		ga, gb := keyGroup(a), keyGroup(b)
		u, err := groupUserKey(ga)
		if err != nil || !bytes.Equal(u, a) {
			t.Fatalf("round trip %q -> %q (%v)", a, u, err)
		}
		if sign(bytes.Compare(ga, gb)) != sign(bytes.Compare(a, b)) {
			t.Fatalf("order of %q %q not preserved", a, b)
		}
		// versions of a sort together, inside the group, newest first
		k1, k2 := versionKey(ga, 5, 0), versionKey(ga, 4, 9)
		if !(bytes.Compare(ga, k1) < 0 && bytes.Compare(k1, k2) < 0 && bytes.Compare(k2, groupEnd(ga)) < 0) {
			t.Fatal("versions outside their group")
		}
		if bytes.Compare(k2, gb) < 0 != (bytes.Compare(a, b) < 0) && !bytes.Equal(a, b) {
			t.Fatalf("version of %q and group of %q misordered", a, b)
		}
		g, m, s, err := splitVersionKey(k2)
		if err != nil || m != 4 || s != 9 || !bytes.Equal(g, ga) {
			t.Fatal("split")
		}
		// a version key of c is within the engine bounds of [a, b) iff c is in [a, b)
		for _, end := range [][]byte{b, nil, {0}} {
			lo, hi, _, ok := rangeBounds(a, end)
			kc := versionKey(keyGroup(c), 3, 1)
			inBounds := ok && bytes.Compare(kc, lo) >= 0 && bytes.Compare(kc, hi) < 0
			if inBounds != inRange(c, a, end) {
				t.Fatalf("key %q range [%q, %q): bounds say %v", c, a, end, inBounds)
			}
		}
		if _, err := unescape(c); err == nil {
			// any decodable string must re-encode to itself
			u, _ := unescape(c)
			if !bytes.Equal(appendEscaped(nil, u), c) {
				t.Fatalf("unescape(%q) does not re-encode", c)
			}
		}
	})
}

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

func TestRecordRoundTrip(t *testing.T) {
	for _, v := range []version{
		{main: 3, sub: 1, create: 2, ver: 7, lease: -5, value: []byte("x\x00y")},
		{main: 1 << 62, sub: 0, create: 1 << 62, ver: 1, lease: 1<<63 - 1, value: []byte{}},
		{main: 9, sub: 2, tomb: true},
	} {
		got, err := decodeRecord(appendRecord(nil, &v), v.main, v.sub, true)
		if err != nil {
			t.Fatal(err)
		}
		if got.tomb != v.tomb || got.create != v.create || got.ver != v.ver || got.lease != v.lease || !bytes.Equal(got.value, v.value) {
			t.Fatalf("%+v != %+v", got, v)
		}
	}
	if _, err := decodeRecord([]byte{0, 0x80}, 1, 0, true); err == nil {
		t.Fatal("truncated record decoded")
	}
}
